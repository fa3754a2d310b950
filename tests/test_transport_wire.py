"""Streamed bodies as they come off the wire: any chunking, any write boundaries, gzip, cut-offs, junk.

A raw socket server writes exactly the bytes each test scripts, so the
transport's reading of chunked and compressed bodies (urllib3's public
streaming API plus zlib) and its connection reuse are checked on real sockets.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from types import TracebackType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmrelay.core.errors import StreamInterruptedError
from llmrelay.core.http.transport import HTTPRequest, RequestsTransport

from tests.support.fake_server import VALID_KEY, FakeOpenRouter
from tests.support.raw_http import read_request


class WireServer:
    """Answers each request on a keep-alive connection with the next scripted list of writes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script: list[tuple[list[bytes], bool]] = []  # (writes, close the connection after them)
        self.connections = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def answer(self, *writes: bytes, close: bool = False) -> None:
        with self.lock:
            self.script.append((list(writes), close))

    def __enter__(self) -> WireServer:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        with conn:
            while True:
                request = read_request(conn, pending)
                if request is None:
                    return
                pending = request[2]
                with self.lock:
                    writes, close = self.script.pop(0) if self.script else ([b"HTTP/1.1 500 No Script\r\n\r\n"], True)
                try:
                    for piece in writes:
                        conn.sendall(piece)
                except OSError:
                    return
                if close:
                    return


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"


def chunked(body: bytes, sizes: list[int], *, extension: bool = False, trailers: bool = False) -> bytes:
    out, pos, turn = [], 0, 0
    while pos < len(body):
        size = max(1, sizes[turn % len(sizes)])
        turn += 1
        part = body[pos : pos + size]
        pos += len(part)
        out.append(b"%x%s\r\n%s\r\n" % (len(part), b";name=value" if extension else b"", part))
    out.append(b"0\r\n" + (b"X-Trailer: 1\r\n" if trailers else b"") + b"\r\n")
    return b"".join(out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def stream_request(url: str, idle: float = 5.0) -> HTTPRequest:
    return HTTPRequest("POST", url, {}, b"{}", stream=True, timeout=(1.0, 5.0), idle_timeout=idle)


def test_any_chunking_and_any_write_boundaries_give_the_body_back_on_one_connection() -> None:
    with WireServer() as server:
        transport = RequestsTransport()

        @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            body=st.binary(min_size=1, max_size=600),
            sizes=st.lists(st.integers(1, 80), min_size=1, max_size=8),
            cuts=st.lists(st.integers(0, 10_000), max_size=30),
            extension=st.booleans(),
            trailers=st.booleans(),
            gzip=st.booleans(),
        )
        def check(body: bytes, sizes: list[int], cuts: list[int], extension: bool, trailers: bool, gzip: bool) -> None:
            encoded = body
            head = HEAD
            if gzip:
                compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
                encoded = compressor.compress(body) + compressor.flush()
                head += b"Content-Encoding: gzip\r\n"
            wire = head + b"\r\n" + chunked(encoded, sizes, extension=extension, trailers=trailers)
            server.answer(*split(wire, cuts))
            assert transport.send(stream_request(server.url)).content == body

        check()
        # Every response was read to its end: the connection went back to the pool each time.
        assert server.connections == 1
        transport.close()


def test_a_body_cut_before_the_last_chunk_is_stream_interrupted_after_what_arrived() -> None:
    with WireServer() as server:
        server.answer(HEAD + b"\r\n5\r\nhello\r\n3\r\nwo", close=True)
        response = RequestsTransport().send(stream_request(server.url))
        received = []
        with pytest.raises(StreamInterruptedError, match="broke off"):
            for piece in response.iter_bytes():
                received.append(piece)
        # Whole chunks that arrived were delivered first (the torn one is not: it is not data yet).
        assert b"".join(received) == b"hello"
        assert response.closed


@pytest.mark.parametrize("wire", [b"zz\r\nhello\r\n0\r\n\r\n", b"1" * 5000], ids=["bad size", "size line too long"])
def test_a_bad_chunk_size_is_stream_interrupted(wire: bytes) -> None:
    with WireServer() as server:
        server.answer(HEAD + b"\r\n" + wire, close=True)
        response = RequestsTransport().send(stream_request(server.url))
        with pytest.raises(StreamInterruptedError, match="broke off"):
            _ = response.content


def test_bytes_after_the_response_never_reach_the_next_request() -> None:
    with WireServer() as server:
        transport = RequestsTransport()
        server.answer(HEAD + b"\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n")
        assert transport.send(stream_request(server.url)).content == b"ok"
        server.answer(HEAD + b"\r\n4\r\nnext\r\n0\r\n\r\n")
        assert transport.send(stream_request(server.url)).content == b"next"
        transport.close()


def test_a_stream_closed_early_is_not_reused_half_read() -> None:
    with WireServer() as server:
        transport = RequestsTransport()
        server.answer(HEAD + b"\r\n5\r\nfirst\r\n")  # ...and the rest never comes
        response = transport.send(stream_request(server.url))
        assert next(response.iter_bytes()) == b"first"
        response.close()
        server.answer(HEAD + b"\r\n4\r\nnext\r\n0\r\n\r\n")
        assert transport.send(stream_request(server.url)).content == b"next"
        assert server.connections == 2  # the half-read connection was discarded, a new one opened
        transport.close()


def real_stream_request(server: FakeOpenRouter) -> HTTPRequest:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}).encode()
    return HTTPRequest(
        "POST",
        server.base_url + "/chat/completions",
        {"Authorization": f"Bearer {VALID_KEY}"},
        body,
        stream=True,
        timeout=(1.0, 5.0),
        idle_timeout=5.0,
    )


def events(data: bytes) -> Iterator[str]:
    for block in data.split(b"\n\n"):
        if block.startswith(b"data: "):
            yield block[6:].decode()


@pytest.mark.parametrize("one_write", [False, True])
def test_streams_from_a_real_server_are_whole_and_reuse_one_connection(one_write: bool) -> None:
    with FakeOpenRouter(one_write=one_write, comments=2) as server:
        server.stream_words = 50
        transport = RequestsTransport()
        bodies = [transport.send(real_stream_request(server)).content for _ in range(3)]
        assert all(body == bodies[0] for body in bodies)
        datas = list(events(bodies[0]))
        assert datas[-1] == "[DONE]" and len(datas) == 50 + 3
        assert [json.loads(d)["choices"][0]["delta"]["content"] for d in datas[:3]] == ["word0", " word1", " word2"]
        assert server.connections_opened == 1
        # Stopping at the end marker (finish) also returns the connection to the pool.
        response = transport.send(real_stream_request(server))
        blocks = response.iter_bytes()  # held, as the SSE driver holds it while it calls finish()
        for block in blocks:
            if b"[DONE]" in block:
                break
        response.finish()
        assert transport.send(real_stream_request(server)).content == bodies[0]
        assert server.connections_opened == 1
        transport.close()
