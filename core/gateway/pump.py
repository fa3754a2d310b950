"""A streamed body read from the upstream on a thread of its own, written in as few writes as it can.

The request's thread (the server's) takes the frames the reader thread has
made: it waits for the first one and then takes every frame that is already
there, so a burst of upstream events goes out in one write instead of one
per event (a write per event cost about three quarters of the throughput
against a fast upstream), while a slow stream still goes out event by event,
with no added wait. When nothing came for ``ping_interval`` seconds it writes
a keep-alive (an SSE comment, or Anthropic's ``ping`` event once the message
has started), which also shows at once whether the client is still there.

The reader thread alone iterates the upstream stream and closes it, so the
stream is never touched by two threads. ``close()`` (the server calls it when
the response ends, and when the client went away) asks the reader to stop: it
closes the upstream stream as soon as it holds the next upstream chunk (a
thread blocked in a read cannot be interrupted safely; the keep-alive makes a
gone client show within ``ping_interval`` even on a silent stream).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Pump"]

_END = object()


class Pump:
    """An iterable WSGI body with ``close()``; ``frames`` is made and consumed on the reader thread."""

    def __init__(
        self,
        frames: Iterator[bytes],
        close_upstream: Callable[[], None],
        *,
        ping: Callable[[], bytes | None],
        ping_interval: float,
    ) -> None:
        self._frames = frames
        self._close_upstream = close_upstream
        self._ping = ping
        self._ping_interval = ping_interval
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="llmrelay-gateway-stream", daemon=True)

    def _read(self) -> None:
        put = self._queue.put
        first = True
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    break
                put(frame)
                if first:
                    # Hand the writer the GIL for the first frame now, not after the
                    # interpreter's 5 ms switch interval (the first chunk's latency).
                    # Later frames of a burst pile up and go out together; those of a
                    # slow stream find the writer waiting while this thread reads.
                    time.sleep(0)
                    first = False
        except BaseException as exc:  # a bug in a translator: the server aborts the response
            self._queue.put(exc)
        finally:
            try:
                close = getattr(self._frames, "close", None)
                if close is not None:
                    close()
            finally:
                self._close_upstream()
                self._queue.put(_END)

    def __iter__(self) -> Iterator[bytes]:
        self._thread.start()
        take = self._queue.get
        while True:
            try:
                item = take(timeout=self._ping_interval)
            except queue.Empty:
                ping = self._ping()
                if ping:
                    yield ping
                continue
            parts: list[bytes] = []
            while True:
                if item is _END:
                    if parts:
                        yield b"".join(parts)
                    return
                if isinstance(item, BaseException):
                    raise item
                parts.append(item)  # type: ignore[arg-type]  # only frames, errors and _END are queued
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            yield b"".join(parts)

    def close(self) -> None:
        self._stop.set()
