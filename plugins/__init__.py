"""Cross-cutting plugins shipped with llmrelay (cache, metrics, circuit breaker).
Each registers through the ``llmrelay`` entry-point group."""
