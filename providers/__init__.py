"""Providers shipped with llmrelay. Each registers through the ``llmrelay``
entry-point group, exactly like a third-party provider."""
