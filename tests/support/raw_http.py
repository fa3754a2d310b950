"""Reading HTTP/1.1 requests off a raw socket, for test servers that write their answers byte by byte."""

from __future__ import annotations

import socket

__all__ = ["read_request"]


def read_request(conn: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes, bytes] | None:
    """The next request on ``conn`` as (head, body, what was read past it); None if the client closed first.

    ``pending`` is what an earlier call read past its request (a keep-alive
    connection); the body is read by its Content-Length.
    """
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    head, _, pending = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(pending) < length:
        data = conn.recv(65536)
        if not data:
            return None
        pending += data
    return head, pending[:length], pending[length:]
