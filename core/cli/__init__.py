"""The ``llmrelay`` command line and the cassettes it records and replays."""

from .context import CommandContext
from .main import main

__all__ = ["CommandContext", "main"]
