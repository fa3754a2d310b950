"""Convert the recorded OpenRouter traffic in ../shared/openrouter/ into plain vcrpy cassettes.

Run by hand from the repository root, never from the tests::

    python cassettes/convert.py                      # reads ../shared/openrouter
    python cassettes/convert.py --source /path/to/openrouter --out cassettes/openrouter

What it does to each file (see cassettes/README.md for where each came from):

* pydantic-ai's JSON-body format -> plain vcrpy: ``parsed_body`` becomes
  ``body`` (request) / ``body.string`` (response) holding ``json.dumps`` of it,
  exactly as pydantic-ai's own deserializer does. SSE bodies are kept verbatim.
* headers llmrelay never stores are dropped (``authorization`` with its
  ``Bearer sk-...`` placeholder, ``cookie``, ``set-cookie`` with the redacted
  ``__cf_bm``), key-shaped values are filtered with the same functions
  ``use_cassette`` records with, and OpenRouter account ids in error bodies
  (``"user_id": "user_2w..."``) become ``user_REDACTED``.
* a ``content-length`` that no longer matches the stored body (llm-openrouter
  truncates recorded /models lists; pydantic-ai re-serializes JSON) is dropped,
  so replay reads the body as stored.
* gzip bodies stay compressed, with their ``Content-Encoding`` header: requests
  decodes them on replay, as it would live.

Every output is checked with ``scan_cassette`` and replay-loaded with vcrpy
before the script reports success.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from llmrelay.core.cli.cassettes import filter_request, filter_response, find_secrets, scan_cassette
from vcr.request import Request
from vcr.serialize import deserialize, serialize
from vcr.serializers import yamlserializer

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "openrouter"
USER_ID = re.compile(r"\buser_[A-Za-z0-9]{16,}\b")


@dataclass(frozen=True)
class Source:
    file: str  # relative to the source folder
    output: str  # relative to the output folder
    fmt: str  # "vcrpy" or "pydantic-ai"


SOURCES = [
    Source("vcrpy/llm-openrouter_1d105c2_test_llm_models.yaml", "models_2025-04.yaml", "vcrpy"),
    Source("vcrpy/llm-openrouter_107aa35_test_llm_models.yaml", "models_2026-08.yaml", "vcrpy"),
    Source("vcrpy/llm-openrouter_8fbcfec_test_image_prompt.yaml", "image_prompt_stream_2024-11.yaml", "vcrpy"),
    Source("vcrpy/llm-openrouter_603cd08_test_prompt.yaml", "prompt_stream_2025-08.yaml", "vcrpy"),
    Source("vcrpy/llm-openrouter_603cd08_test_tool_calls.yaml", "tool_calls_stream_2025-08.yaml", "vcrpy"),
    Source(
        "pydantic-ai/pydantic-ai_4fda389_test_openrouter_stream_error.yaml", "stream_error_2025-11.yaml", "pydantic-ai"
    ),
    Source("pydantic-ai/pydantic-ai_4fda389_test_openrouter_errors_raised.yaml", "errors_429_2025.yaml", "pydantic-ai"),
    Source(
        "pydantic-ai/pydantic-ai_126710a_test_openrouter_with_google_model.yaml",
        "retry_429_429_200_2025-05.yaml",
        "pydantic-ai",
    ),
    Source(
        "pydantic-ai/pydantic-ai_4fda389_test_openrouter_tool_calling.yaml", "tool_calling_2025-11.yaml", "pydantic-ai"
    ),
    Source("pydantic-ai/pydantic-ai_4fda389_test_openrouter_usage.yaml", "usage_2025.yaml", "pydantic-ai"),
    Source(
        "pydantic-ai/pydantic-ai_4fda389_test_openrouter_with_native_options.yaml",
        "native_options_2025-10.yaml",
        "pydantic-ai",
    ),
    Source(
        "pydantic-ai/pydantic-ai_4fda389_test_openrouter_stream_with_native_options.yaml",
        "stream_native_options_2025-11.yaml",
        "pydantic-ai",
    ),
]


def _to_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _from_pydantic_ai(interaction: dict[str, Any]) -> None:
    request, response = interaction["request"], interaction["response"]
    if "parsed_body" in request:
        request["body"] = json.dumps(request.pop("parsed_body"))
    request.setdefault("body", None)
    if "parsed_body" in response:
        response["body"] = {"string": json.dumps(response.pop("parsed_body"))}


def _drop_stale_length(headers: dict[str, list[str]], body: bytes) -> None:
    for name in list(headers):
        if name.lower() == "content-length" and headers[name] != [str(len(body))]:
            del headers[name]


def _scrub_ids(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return body
        cleaned = USER_ID.sub("user_REDACTED", text)
        return body if cleaned == text else cleaned.encode("utf-8")
    if isinstance(body, str):
        return USER_ID.sub("user_REDACTED", body)
    return body


def _is_gzip(headers: dict[str, list[str]]) -> bool:
    return any(k.lower() == "content-encoding" and "gzip" in " ".join(v).lower() for k, v in headers.items())


def convert(source: Path, fmt: str) -> str:
    data = yaml.load(source.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    requests: list[Request] = []
    responses: list[dict[str, Any]] = []
    for interaction in data["interactions"]:
        if fmt == "pydantic-ai":
            _from_pydantic_ai(interaction)
        raw_request = interaction["request"]
        raw_request["body"] = _scrub_ids(raw_request.get("body"))
        request = filter_request(Request._from_dict(raw_request))
        _drop_stale_length(request.headers, _to_bytes(request.body))

        response = interaction["response"]
        headers = response["headers"]
        body = response["body"]["string"]
        # Kept compressed as recorded, unless something secret is inside.
        if _is_gzip(headers) and find_secrets(gzip.decompress(_to_bytes(body)).decode("utf-8", "replace")):
            body = gzip.decompress(_to_bytes(body))
            for name in [k for k in headers if k.lower() == "content-encoding"]:
                del headers[name]
        response["body"]["string"] = _scrub_ids(_to_bytes(body))
        response = filter_response(response)
        _drop_stale_length(response["headers"], _to_bytes(response["body"]["string"]))
        requests.append(request)
        responses.append(response)
    return serialize({"requests": requests, "responses": responses}, yamlserializer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the shared/openrouter folder")
    parser.add_argument("--out", type=Path, default=HERE / "openrouter", help="where to write the cassettes")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"{args.source} is not a folder (pass --source)")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for item in SOURCES:
        text = convert(args.source / item.file, item.fmt)
        target = args.out / item.output
        target.write_text(text, encoding="utf-8")
        requests, _responses, *_ = deserialize(text, yamlserializer)  # vcrpy can load what was written
        problems = scan_cassette(target)
        status = "ok" if not problems else "SECRETS: " + "; ".join(problems)
        failed = failed or bool(problems)
        print(f"{item.file} -> {target.relative_to(args.out.parent)} ({len(requests)} interactions) {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
