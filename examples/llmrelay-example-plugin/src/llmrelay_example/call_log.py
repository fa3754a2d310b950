"""A layer that logs one line per provider call.

A layer gets each :class:`~llmrelay.core.Call` and a ``proceed`` function for
the rest of the chain. This one times the call, and for a stream waits for
the stream to end (``add_done_callback``) instead of wrapping its iterator,
so it costs nothing per chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from llmrelay.core import Call, ChatStream, Layer, LayerContext
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CallLogLayer", "CallLogSettings", "build_call_log"]


class CallLogSettings(BaseModel):
    """The ``[plugins.call_log]`` section of the config."""

    model_config = ConfigDict(extra="forbid")

    logger: str = Field(default="llmrelay.call_log", description="the logger to write to")
    level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING)$")


Sink = Callable[[dict[str, Any]], None]


class CallLogLayer(Layer):
    name = "call_log"

    def __init__(
        self, settings: CallLogSettings, *, sink: Sink | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.log = logging.getLogger(settings.logger)
        self.level = logging.getLevelName(settings.level)
        self.sink = sink  # tests and applications may collect the records too
        self.clock = clock

    def handle(self, call: Call, proceed: Callable[[Call], Any]) -> Any:
        started = self.clock()
        try:
            result = proceed(call)
        except Exception as error:
            self._emit(call, "error", started, type(error).__name__)
            raise
        if isinstance(result, ChatStream):
            result.add_done_callback(
                lambda stream: self._emit(
                    call, stream.outcome or "unknown", started, type(stream.error).__name__ if stream.error else None
                )
            )
        else:
            self._emit(call, "ok", started, None)
        return result

    def _emit(self, call: Call, outcome: str, started: float, error: str | None) -> None:
        record = {
            "operation": call.operation,
            "provider": call.provider,
            "model": call.model,
            "outcome": outcome,
            "error": error,
            "seconds": round(self.clock() - started, 6),
        }
        self.log.log(self.level, "%(operation)s %(provider)s %(model)s -> %(outcome)s in %(seconds)ss", record)
        if self.sink is not None:
            self.sink(record)


def build_call_log(context: LayerContext) -> CallLogLayer:
    """The factory llmrelay calls once per provider (return None to stay out of its chain)."""
    return CallLogLayer(context.settings)
