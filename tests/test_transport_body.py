"""The bulk de-chunking reader of streamed bodies, against scripted socket reads and a real server."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llmrelay.core.errors import StreamInterruptedError
from llmrelay.core.http.transport import HTTPRequest, RequestsTransport
from llmrelay.core.http.transport_body import body_error, can_read_in_bulk, read_chunked_bulk

from tests.support.fake_server import VALID_KEY, FakeOpenRouter


class ScriptedFile:
    """Stands in for http.client's buffered socket file: ``read1`` returns the scripted pieces in turn."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, size: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > size:
            self.pieces.insert(0, piece[size:])
            piece = piece[:size]
        return piece


class ScriptedOriginal:
    def __init__(self, pieces: list[bytes]) -> None:
        self.fp: ScriptedFile | None = ScriptedFile(pieces)
        self.closed_conn = False

    def _close_conn(self) -> None:
        self.closed_conn = True
        self.fp = None


class ScriptedRaw:
    """Stands in for urllib3's response: records whether the connection was pooled or dropped."""

    def __init__(self, pieces: list[bytes], encoding: str | None = None) -> None:
        self._original_response = ScriptedOriginal(pieces)
        self.headers = {"content-encoding": encoding} if encoding else {}
        self.chunked = True
        self.chunk_left = None
        self.released = 0
        self.closed = 0

    def release_conn(self) -> None:
        self.released += 1

    def close(self) -> None:
        self.closed += 1


def errors(error: BaseException) -> Any:
    return body_error(error, "http://127.0.0.1:1/x", streaming=True, read_timeout=1.0, idle_timeout=1.0)


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
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


def read_all(raw: ScriptedRaw) -> bytes:
    return b"".join(read_chunked_bulk(raw, errors))


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=600),
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
    extension=st.booleans(),
    trailers=st.booleans(),
    gzip=st.booleans(),
)
def test_any_chunking_and_any_read_boundaries_give_the_body_back(
    body: bytes, sizes: list[int], cuts: list[int], extension: bool, trailers: bool, gzip: bool
) -> None:
    encoded = body
    if gzip:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        encoded = compressor.compress(body) + compressor.flush()
    wire = chunked(encoded, sizes, extension=extension, trailers=trailers)
    raw = ScriptedRaw(split(wire, cuts), "gzip" if gzip else None)
    assert read_all(raw) == body
    # The whole response was read: the connection goes back to the pool, not closed.
    assert (raw.released, raw.closed, raw._original_response.closed_conn) == (1, 0, True)


def test_a_body_cut_before_the_last_chunk_is_stream_interrupted() -> None:
    raw = ScriptedRaw([b"5\r\nhello\r\n3\r\nwo"])
    received = []
    with pytest.raises(StreamInterruptedError, match="broke off"):
        for piece in read_chunked_bulk(raw, errors):
            received.append(piece)
    assert b"".join(received) == b"hellowo"  # what arrived was delivered first
    assert raw.released == 0


def test_a_bad_chunk_size_is_stream_interrupted() -> None:
    with pytest.raises(StreamInterruptedError, match="invalid chunk size"):
        read_all(ScriptedRaw([b"zz\r\nhello\r\n0\r\n\r\n"]))
    with pytest.raises(StreamInterruptedError, match="too long"):
        read_all(ScriptedRaw([b"1" * 5000]))


def test_bytes_after_the_response_drop_the_connection_instead_of_pooling_it() -> None:
    raw = ScriptedRaw([b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"])
    assert read_all(raw) == b"ok"
    assert (raw.released, raw.closed) == (0, 1)


def test_only_chunked_identity_or_zlib_bodies_are_read_in_bulk() -> None:
    assert can_read_in_bulk(ScriptedRaw([]))
    assert can_read_in_bulk(ScriptedRaw([], "gzip"))
    assert not can_read_in_bulk(ScriptedRaw([], "br"))
    plain = ScriptedRaw([])
    plain.chunked = False
    assert not can_read_in_bulk(plain)


def stream_request(server: FakeOpenRouter) -> HTTPRequest:
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
        bodies = [transport.send(stream_request(server)).content for _ in range(3)]
        assert all(body == bodies[0] for body in bodies)
        datas = list(events(bodies[0]))
        assert datas[-1] == "[DONE]" and len(datas) == 50 + 3
        assert [json.loads(d)["choices"][0]["delta"]["content"] for d in datas[:3]] == ["word0", " word1", " word2"]
        assert server.connections_opened == 1
        # Stopping at the end marker (finish) also returns the connection to the pool.
        response = transport.send(stream_request(server))
        blocks = response.iter_bytes()  # held, as the SSE driver holds it while it calls finish()
        for block in blocks:
            if b"[DONE]" in block:
                break
        response.finish()
        assert transport.send(stream_request(server)).content == bodies[0]
        assert server.connections_opened == 1
        transport.close()
