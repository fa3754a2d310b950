"""The ``llmrelay`` command line and the cassettes it records and replays."""

from .main import main

__all__ = ["main"]
