"""Fails on import, as a plugin with a missing dependency or a bug would."""

raise RuntimeError("llmrelay_broken is broken on purpose")
