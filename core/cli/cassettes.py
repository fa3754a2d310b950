"""Recording provider traffic to vcrpy cassettes and replaying it, with secrets filtered.

::

    from llmrelay.core.cli.cassettes import use_cassette

    with use_cassette("cassettes/openrouter/models_2025-04.yaml"):      # replay only
        models = create_provider("openrouter", api_key="placeholder").list_models()

    with use_cassette("my.yaml", mode="all", secrets=[real_key]):      # record
        ...

What this adds to plain vcrpy (which is imported only when a cassette is used):

* **Matching** on method, scheme, host, port, path, query *and* the body,
  compared as JSON when it parses as JSON (key order and spacing do not
  matter). vcrpy's default matchers ignore the body, so every
  ``POST /chat/completions`` would replay the first recorded answer.
* **Filtering** before anything is written: the ``authorization``,
  ``proxy-authorization``, ``x-api-key``, ``api-key`` and ``cookie`` request
  headers and the ``set-cookie`` response header are dropped; any value shaped
  like a key (:data:`llmrelay.core.secrets.KEY_PATTERN`, ``key=...`` query
  parameters, ``"api_key": ...`` JSON fields) and every secret passed in
  ``secrets`` is replaced by ``***`` in the URL, the request body and the
  response body. Compressed responses are stored decoded so the filter can
  read them.
* **Modes**: ``"none"`` replays only, and a request the cassette does not hold
  raises vcrpy's ``CannotOverwriteExistingCassetteException`` naming it (see
  :func:`unmatched_request`); ``"once"``, ``"new_episodes"`` and ``"all"``
  record as vcrpy's modes of the same names do. :func:`mode_from_env` reads
  ``LLMRELAY_RECORD`` so a test suite replays by default and re-records with
  ``LLMRELAY_RECORD=1``.

Plain vcrpy is used through its public API only: nothing of it is patched.
Under a cassette vcrpy swaps urllib3's response for its own stub, which the
transport reads through the same public calls as a real response (``read1``
with no ``decode_content`` flag, which the stub does not take, ``read``,
``release_conn``, ``close``); the transport decodes gzip itself, so a stub
that cannot decode reads the same.

Known vcrpy limits (DESIGN.md): a response is replayed as one block, so
chunk timing, stalls and connections dropped mid-stream need a local server.
The other two issues DESIGN.md lists (a hang with ``pool_maxsize=1,
pool_block=True``; a loop with ``iter_content(chunk_size=None)``) did not
reproduce with vcrpy 9.4.2 (sequential calls, streams closed early, both
checked); keep ``pool.block`` off (the default) when replaying all the same.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..secrets import REDACTED, redact

__all__ = [
    "MATCH_ON",
    "MODES",
    "RECORD_ENV",
    "REQUEST_HEADERS_DROPPED",
    "RESPONSE_HEADERS_DROPPED",
    "cassette_fixture",
    "filter_request",
    "filter_response",
    "find_secrets",
    "json_body_matcher",
    "mode_from_env",
    "scan_cassette",
    "scrub_text",
    "unmatched_request",
    "use_cassette",
]

MODES = ("none", "once", "new_episodes", "all")
RECORD_ENV = "LLMRELAY_RECORD"
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "llmrelay_json_body")

REQUEST_HEADERS_DROPPED = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"})
RESPONSE_HEADERS_DROPPED = frozenset({"set-cookie", "set-cookie2"})

# JSON fields whose string value is a credential whatever it looks like. Not a
# bare "token": logprobs carry {"token": "Hello", ...} in every entry.
_SECRET_FIELDS = re.compile(
    r"(?i)^(api[_-]?key|apikey|secret|client_secret|password|access_token|refresh_token|authorization)$"
)


# --------------------------------------------------------------------------- scrubbing


# Stricter than redaction: a cassette must not hold even a placeholder or a
# masked label that looks like a credential ("sk-...", "sk-or-v1-0fa...240",
# "Bearer sk-..."), so that a real key recorded by mistake can never hide
# among accepted look-alikes. Recording replaces each shape; the scan flags it.
_SECRET_SHAPES: list[tuple[str, re.Pattern[str], str]] = [
    ("API key (sk-...)", re.compile(r"(?<![A-Za-z0-9])sk-(?!\*\*\*)[A-Za-z0-9._\-]+"), "sk-***"),
    ("bearer token", re.compile(r"Bearer\s+(?!\*\*\*)[^\s\"',]+"), "Bearer ***"),
    ("Groq key", re.compile(r"(?<![A-Za-z0-9])gsk_[A-Za-z0-9]{8,}"), "gsk_***"),
    ("Google API key", re.compile(r"AIza[0-9A-Za-z_\-]{30,}"), "AIza***"),
    (
        "key in a query string",
        re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token)=)(?!\*\*\*)[^&\s\"']+"),
        r"\1***",
    ),
    ("Cloudflare cookie", re.compile(r"__cf_bm=(?!REDACTED)[^;\s\"']+"), "__cf_bm=REDACTED"),
]


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets, key-shaped values and credential look-alikes replaced."""
    text = redact(text, secrets)
    for _label, shape, replacement in _SECRET_SHAPES:
        text = shape.sub(replacement, text)
    return text


def _scrub_json(value: Any, secrets: Collection[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(v, str) and v and _SECRET_FIELDS.match(str(k)) else _scrub_json(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_json(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def _scrub_body(body: bytes | str | None, secrets: Collection[str]) -> bytes | str | None:
    """The body with secrets filtered; unchanged (same bytes) when nothing needed filtering."""
    if not body:
        return body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return body  # binary (an image upload, a compressed body): nothing text-shaped to filter
    try:
        parsed = json.loads(text)
    except ValueError:
        cleaned = scrub_text(text, secrets)
    else:
        scrubbed = _scrub_json(parsed, secrets)
        cleaned = text if scrubbed == parsed else json.dumps(scrubbed)
    if cleaned == text:
        return body
    return cleaned if isinstance(body, str) else cleaned.encode("utf-8")


def filter_request(request: Any, secrets: Collection[str] = ()) -> Any:
    """Drop credential headers and filter key-shaped values from a vcrpy ``Request``."""
    for name in list(request.headers):
        if name.lower() in REQUEST_HEADERS_DROPPED:
            del request.headers[name]
    cleaned_uri = scrub_text(request.uri, secrets)
    if cleaned_uri != request.uri:
        request.uri = cleaned_uri
    body = request.body
    cleaned = _scrub_body(body, secrets)
    if cleaned is not body:
        request.body = cleaned
    return request


def _header(headers: dict[str, Any], name: str) -> tuple[str, Any] | None:
    for key, value in headers.items():
        if key.lower() == name:
            return key, value
    return None


def filter_response(response: dict[str, Any], secrets: Collection[str] = ()) -> dict[str, Any]:
    """Drop ``set-cookie`` and filter key-shaped values from a vcrpy response dict."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in RESPONSE_HEADERS_DROPPED:
            del headers[name]
    body = response.get("body", {}).get("string")
    if _header(headers, "content-encoding") is None:
        cleaned = _scrub_body(body, secrets)
        if cleaned is not body and cleaned is not None:
            response["body"]["string"] = cleaned
            length = _header(headers, "content-length")
            if length is not None:
                size = len(cleaned.encode("utf-8") if isinstance(cleaned, str) else cleaned)
                headers[length[0]] = [str(size)]
    return response


# --------------------------------------------------------------------------- finding secrets


def find_secrets(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """Descriptions of every credential-shaped value in ``text`` (empty when clean)."""
    found = [f"{label}: {m.group(0)[:12]}..." for label, shape, _ in _SECRET_SHAPES for m in shape.finditer(text)]
    found.extend("a known secret" for secret in secrets if secret and secret in text)
    return found


def _decoded_body(body: Any, headers: dict[str, list[str]]) -> str:
    if body is None:
        return ""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    encoding = _header(headers, "content-encoding")
    if encoding is not None and "gzip" in " ".join(encoding[1]).lower():
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def scan_cassette(path: str | os.PathLike[str], secrets: Iterable[str] = ()) -> list[str]:
    """Every secret-looking thing in a cassette file, as ``"<where>: <what>"`` lines.

    Reads headers, URLs and bodies (compressed ones decoded). An empty list
    means the cassette is safe to commit.
    """
    from vcr.serializers import yamlserializer

    secrets = list(secrets)
    text = Path(path).read_text(encoding="utf-8")
    problems = [f"raw file: {what}" for what in find_secrets(text, secrets)]
    data = yamlserializer.deserialize(text)
    for number, interaction in enumerate(data.get("interactions", []), 1):
        for kind, dropped in (("request", REQUEST_HEADERS_DROPPED), ("response", RESPONSE_HEADERS_DROPPED)):
            part = interaction[kind]
            headers = part.get("headers") or {}
            where = f"interaction {number} {kind}"
            for name in headers:
                if name.lower() in dropped:
                    problems.append(f"{where}: header {name!r} must be filtered")
            header_text = "\n".join(f"{k}: {v}" for k, values in headers.items() for v in values)
            body = part.get("body")
            if isinstance(body, dict):
                body = body.get("string")
            texts = [header_text, _decoded_body(body, headers), str(part.get("uri", ""))]
            for what in find_secrets("\n".join(texts), secrets):
                problems.append(f"{where}: {what}")
    return problems


# --------------------------------------------------------------------------- matching


def _normalized_body(request: Any, ignore_fields: Collection[str]) -> Any:
    body = request.body
    if body is None or body == b"" or body == "":
        return ""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if ignore_fields and isinstance(parsed, dict):
        parsed = {k: v for k, v in parsed.items() if k not in ignore_fields}
    return parsed


def json_body_matcher(ignore_fields: Collection[str] = ()) -> Callable[[Any, Any], None]:
    """A vcrpy matcher: bodies equal as JSON (or as bytes when not JSON).

    ``ignore_fields`` names top-level JSON fields left out of the comparison;
    keep it empty unless a field is transport noise for the test at hand.
    """
    ignored = frozenset(ignore_fields)

    def llmrelay_json_body(r1: Any, r2: Any) -> None:
        b1, b2 = _normalized_body(r1, ignored), _normalized_body(r2, ignored)
        if b1 != b2:
            if isinstance(b1, dict) and isinstance(b2, dict):
                differing = sorted(k for k in set(b1) | set(b2) if b1.get(k) != b2.get(k))
                raise AssertionError(f"JSON bodies differ in {differing}")
            raise AssertionError("bodies differ")

    return llmrelay_json_body


# --------------------------------------------------------------------------- the context manager


def mode_from_env(default: str = "none") -> str:
    """The record mode ``LLMRELAY_RECORD`` asks for: unset = ``default``, ``1`` = ``"all"``."""
    value = os.environ.get(RECORD_ENV, "").strip().lower()
    if not value or value in ("0", "false", "no", "off"):
        return default
    if value in ("1", "true", "yes", "on"):
        return "all"
    if value in MODES:
        return value
    raise ConfigurationError(f"{RECORD_ENV}={value!r}: expected 1, 0 or one of {', '.join(MODES)}")


class _SecretView(Collection[str]):
    """Reads the caller's secret collection at filter time, so keys added later are filtered too."""

    def __init__(self, source: Iterable[str]) -> None:
        self._source = source

    def _values(self) -> list[str]:
        return [s for s in list(self._source) if s]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def __contains__(self, item: object) -> bool:
        return item in self._values()


@contextmanager
def use_cassette(
    path: str | os.PathLike[str],
    mode: str = "none",
    *,
    secrets: Iterable[str] = (),
    ignore_body_fields: Collection[str] = (),
    allow_playback_repeats: bool = False,
) -> Iterator[Any]:
    """Replay (``mode="none"``) or record HTTP traffic made with requests inside the block.

    ``secrets`` is read each time something is recorded: pass a set and add
    to it after entering (a key read from config later) and those values are
    filtered too. Yields vcrpy's ``Cassette`` (``.play_count``, ``.all_played``).
    """
    if mode not in MODES:
        raise ConfigurationError(f"cassette record mode {mode!r} is not one of {', '.join(MODES)}")
    cassette_path = Path(path)
    if mode == "none" and not cassette_path.is_file():
        raise ConfigurationError(
            f"cassette {cassette_path} does not exist (replay needs a recorded cassette; record one with "
            f"--record {cassette_path} or {RECORD_ENV}=1)"
        )
    if mode != "none" and cassette_path.parent and not cassette_path.parent.exists():
        raise ConfigurationError(f"cannot record to {cassette_path}: folder {cassette_path.parent} does not exist")
    try:
        import vcr
    except ImportError:
        raise ConfigurationError("cassettes need vcrpy: pip install 'llmrelay[dev]' (or pip install vcrpy)") from None

    secret_view = _SecretView(secrets)
    recorder = vcr.VCR(
        record_mode=mode,
        match_on=MATCH_ON,
        decode_compressed_response=True,
        before_record_request=lambda request: filter_request(request, secret_view),
        before_record_response=lambda response: filter_response(response, secret_view),
    )
    recorder.register_matcher("llmrelay_json_body", json_body_matcher(ignore_body_fields))
    # vcrpy logs whole request and response bodies at DEBUG; a key a service
    # echoes in an error body would reach the logs that way.
    vcr_log = logging.getLogger("vcr")
    previous_level = vcr_log.level
    vcr_log.setLevel(max(previous_level, logging.WARNING))
    try:
        with recorder.use_cassette(str(cassette_path), allow_playback_repeats=allow_playback_repeats) as cassette:
            yield cassette
    finally:
        vcr_log.setLevel(previous_level)


def cassette_fixture(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A pytest fixture replaying ``path`` (recording when ``LLMRELAY_RECORD`` says so)::

    openrouter_models = cassette_fixture("cassettes/openrouter/models_2025-04.yaml")

    def test_models(openrouter_models): ...
    """
    import pytest

    @pytest.fixture
    def _cassette() -> Iterator[Any]:
        with use_cassette(path, mode_from_env(), **kwargs) as cassette:
            yield cassette

    return _cassette


def unmatched_request(exc: BaseException) -> str | None:
    """``"METHOD url"`` when ``exc`` (or its cause) is vcrpy's "request not in cassette", else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "CannotOverwriteExistingCassetteException":
            failed = getattr(current, "failed_request", None)
            if failed is None:
                return "a request"
            return redact(f"{failed.method} {failed.uri}")
        current = current.__cause__ or current.__context__
    return None
