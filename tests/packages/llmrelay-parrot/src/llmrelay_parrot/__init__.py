"""A third-party llmrelay plugin: it only knows llmrelay's public API."""
