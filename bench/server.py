"""A fast local server speaking the OpenAI / OpenRouter chat-completions API, for benchmarks.

Run it as its own process (the benchmark suite does this)::

    python bench/server.py [--port 0] [--stream-chunks 1000]

It prints ``PORT <n>`` on its first line once it listens on 127.0.0.1 and
serves until killed. Routes (any path prefix, e.g. ``/api/v1``, is ignored):

* ``POST .../chat/completions``: a JSON completion, or, when the body asks
  for ``"stream": true``, an SSE stream of ``--stream-chunks`` content
  chunks (OpenRouter's ``: OPENROUTER PROCESSING`` comments first, then the
  deltas, a finish chunk, a usage chunk and ``data: [DONE]``), chunked
  transfer encoding, one HTTP chunk per event;
* ``GET .../models``: a small model list; ``GET .../key``: key info.

Why it is built this way: a benchmark of client overhead needs a server
whose own cost per request is far below the client's (a naive
``requests`` call costs ~0.8 ms on loopback). A raw ``asyncio.Protocol``
with every response precomputed as bytes answers in a few microseconds:
no HTTP framework, no JSON encoding per request, HTTP/1.1 keep-alive, one
``write`` per response. Only the Authorization header's presence is not
checked: it is a benchmark server, not a fake of the service's rules (the
test suite's ``tests/support/fake_server.py`` is that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
from typing import Any, ClassVar

__all__ = ["BenchProtocol", "build_responses", "main", "serve"]

MODEL = "openai/gpt-4o-mini"


def _completion() -> dict[str, Any]:
    return {
        "id": "gen-bench-1",
        "provider": "OpenAI",
        "model": MODEL,
        "object": "chat.completion",
        "created": 1754500000,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "logprobs": None,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there, how are you?", "refusal": None},
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "cost": 0.0000042,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _stream_events(chunks: int) -> list[bytes]:
    base = {
        "id": "gen-bench-2",
        "provider": "OpenAI",
        "model": MODEL,
        "object": "chat.completion.chunk",
        "created": 1754500000,
        "system_fingerprint": "fp_bench",
    }
    frames = [b": OPENROUTER PROCESSING\n\n", b": OPENROUTER PROCESSING\n\n"]
    for i in range(chunks):
        delta = {"role": "assistant", "content": f" word{i}"} if i == 0 else {"content": f" word{i}"}
        event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]}
        frames.append(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    finish = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]}
    frames.append(b"data: " + json.dumps(finish, separators=(",", ":")).encode() + b"\n\n")
    usage = {
        **base,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks, "cost": 0.00001},
    }
    frames.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def _models() -> dict[str, Any]:
    return {
        "data": [
            {
                "id": MODEL,
                "name": "OpenAI: GPT-4o-mini",
                "created": 1721260800,
                "context_length": 128000,
                "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
                "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
                "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": True},
            },
            {
                "id": "meta-llama/llama-3.3-70b-instruct:free",
                "name": "Llama 3.3 70B (free)",
                "created": 1733506137,
                "context_length": 65536,
                "pricing": {"prompt": "0", "completion": "0"},
            },
        ]
    }


def _json_response(payload: Any, status: str = "200 OK") -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "X-Generation-Id: gen-bench-1\r\n\r\n"
    ).encode()
    return head + body


def build_responses(stream_chunks: int) -> dict[str, bytes]:
    """Every answer the server gives, as the exact bytes written to the socket."""
    frames = _stream_events(stream_chunks)
    sse = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"
    return {
        "chat": _json_response(_completion()),
        "stream": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + sse,
        "models": _json_response(_models()),
        "key": _json_response(
            {"data": {"label": "sk-or-v1-ben...ch", "limit": None, "usage": 0.5, "is_free_tier": False}}
        ),
        "not_found": _json_response({"error": {"code": 404, "message": "no such route"}}, "404 Not Found"),
        "bad_request": _json_response({"error": {"code": 400, "message": "malformed request"}}, "400 Bad Request"),
    }


class BenchProtocol(asyncio.Protocol):
    """One connection: parse pipelined HTTP/1.1 requests, answer each with precomputed bytes."""

    responses: ClassVar[dict[str, bytes]] = {}

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        responses = self.responses
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            marker = head.lower().find(b"\r\ncontent-length:")
            if marker >= 0:
                stop = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            body = buffer[end + 4 : total]
            buffer = buffer[total:]
            line_end = head.find(b"\r\n")
            request_line = head[: line_end if line_end >= 0 else len(head)]
            method, _, rest = request_line.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method == b"POST" and path.endswith(b"/chat/completions"):
                if b'"stream":true' in body or b'"stream": true' in body:
                    out.append(responses["stream"])
                else:
                    out.append(responses["chat"])
            elif method == b"GET" and path.endswith(b"/models"):
                out.append(responses["models"])
            elif method == b"GET" and path.endswith(b"/key"):
                out.append(responses["key"])
            else:
                out.append(responses["not_found"])
        self.buffer = buffer
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))


async def serve(port: int, stream_chunks: int) -> None:
    BenchProtocol.responses = build_responses(stream_chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BenchProtocol, "127.0.0.1", port, backlog=512, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fast local chat-completions server for benchmarks")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stream-chunks", type=int, default=1000, help="content chunks per streamed answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):  # killed by the suite: a quiet exit
        asyncio.run(serve(args.port, args.stream_chunks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
