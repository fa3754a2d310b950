"""A streamed body read from the upstream on a thread of its own, written in as few writes as it can.

The request's thread (the server's) takes the frames the reader thread has
made: it waits for the first one and then takes every frame that is already
there, so a burst of upstream events goes out in one write instead of one
per event (a write per event cost about three quarters of the throughput
against a fast upstream), while a slow stream still goes out event by event,
with no added wait. When nothing came for ``ping_interval`` seconds it writes
a keep-alive (an SSE comment, or Anthropic's ``ping`` event once the message
has started).

A client that goes away is noticed within ``watch_interval`` seconds, even
on a silent stream: while it waits, the request's thread looks at the
client's socket (gunicorn hands it over as ``environ["gunicorn.socket"]``),
which turns readable at end of file. Then, or when the server calls
``close()`` (at the end of the response, or after a failed write), the
upstream stream is closed at once: :meth:`ChatStream.close` may be called
from any thread and ends a read blocked on the reader thread, so the upstream
sees the connection end and stops spending tokens.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Pump", "client_gone"]

_END = object()
#: How often a waiting stream looks whether its client is still there (seconds).
WATCH_INTERVAL = 0.25


def client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end: the socket is readable and holds nothing (or is broken).

    An HTTP/1.1 client sends nothing more while it reads a streamed response
    (a pipelined request would be data, not the end), so a readable socket
    that peeks empty is a client that hung up.
    """
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # reset by the peer, or closed under us: gone all the same
        return True


class Pump:
    """An iterable WSGI body with ``close()``; ``frames`` is made and consumed on the reader thread."""

    def __init__(
        self,
        frames: Iterator[bytes],
        close_upstream: Callable[[], None],
        *,
        ping: Callable[[], bytes | None],
        ping_interval: float,
        client: socket.socket | None = None,
        watch_interval: float = WATCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._frames = frames
        self._close_upstream = close_upstream
        self._ping = ping
        self._ping_interval = ping_interval
        self._client = client
        # Without a socket to watch, waking up only to ping is enough.
        self._wait = min(watch_interval, ping_interval) if client is not None else ping_interval
        self._clock = clock
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
        last_write = self._clock()
        while True:
            try:
                item = take(timeout=self._wait)
            except queue.Empty:
                if self._client is not None and client_gone(self._client):
                    self.close()
                    return
                if self._clock() - last_write >= self._ping_interval:
                    ping = self._ping()
                    if ping:
                        last_write = self._clock()
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
            last_write = self._clock()
            yield b"".join(parts)

    def close(self) -> None:
        """Stop: the upstream stream is closed now, also while the reader thread is blocked reading it."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._close_upstream()
