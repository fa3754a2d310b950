"""A server on 127.0.0.1 that starts an SSE stream, goes silent, and reports when the client hangs up.

It takes one connection, reads the request, optionally waits on
``hold_headers`` before answering (a request still waiting for its
response), sends the headers of a chunked ``text/event-stream`` and the
given events, and then reads its socket: that read returns only when the
client closes the connection (EOF or a reset), which sets
:attr:`StallingStreamServer.client_closed`. Nothing ever ends the stall from
the server's side, so the only way the client's read can end before its idle
timeout is the client closing the connection itself::

    with StallingStreamServer([event]) as server:
        ...                                  # read a chunk, then cancel
        assert server.client_closed.wait(10)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

from tests.support.raw_http import read_request

__all__ = ["StallingStreamServer", "chat_event"]


def chat_event(text: str) -> bytes:
    """One OpenAI-style chat chunk as an SSE ``data:`` event."""
    data = {"id": "gen-stall", "model": "test/model", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class StallingStreamServer:
    """Serves one streamed chat request: the first ``events``, then silence until the client hangs up."""

    def __init__(self, events: list[bytes], *, hold_headers: threading.Event | None = None) -> None:
        self.events = events
        self.hold_headers = hold_headers
        #: The request arrived (its body read).
        self.request_received = threading.Event()
        #: The headers and events were sent.
        self.events_sent = threading.Event()
        #: The client closed the connection (the server's read returned EOF or a reset).
        self.client_closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self._connection: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="stalling-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:  # stopped before a client came
            return
        self._connection = connection
        with connection:
            read_request(connection)
            self.request_received.set()
            if self.hold_headers is not None:
                self.hold_headers.wait(30)
            try:
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for event in self.events:
                    connection.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            except OSError:  # the client is already gone
                self.client_closed.set()
                return
            self.events_sent.set()
            self._wait_for_hang_up(connection)

    def _wait_for_hang_up(self, connection: socket.socket) -> None:
        while True:
            try:
                data = connection.recv(65536)
            except OSError:  # a reset: hung up too
                data = b""
            if not data:
                if not self._stopping.is_set():
                    self.client_closed.set()
                return

    def __enter__(self) -> StallingStreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stopping.set()
        if self.hold_headers is not None:
            self.hold_headers.set()
        with contextlib.suppress(OSError):  # ends an accept() still waiting (close alone would not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._connection is not None:
            # A test that failed left the client connected: end the server's read.
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
