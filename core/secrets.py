"""Keeping API keys out of everything llmrelay prints, logs, raises or records.

Keys live in :class:`pydantic.SecretStr` from the moment config is read;
code that needs the plain value calls ``get_secret_value()`` at the one
place it builds the ``Authorization`` header. :func:`redact` is the second
line of defence for text that came from elsewhere (an upstream error body
that echoes a header, a URL with a ``key=`` parameter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

__all__ = ["KEY_PATTERN", "mask", "redact"]

# Shapes of bearer keys issued by the services llmrelay talks to
# (sk-or-v1-..., sk-proj-..., sk-ant-..., gsk_..., long hex or base64 tokens
# after "Bearer ").
_KEY_SOURCE = r"(?:sk-[A-Za-z0-9_\-]{16,}|gsk_[A-Za-z0-9]{16,}|(?<=Bearer )[A-Za-z0-9._\-]{12,})"
# A value must hold a letter or digit: prose such as "pass api_key=..., or"
# is advice, not a key, and stays readable.
_QUERY_KEY_SOURCE = r"(?i)\b((?:api[_-]?key|key|token|access_token)=)(?=[^&\s\"',]*[A-Za-z0-9])[^&\s\"',]+"

REDACTED = "***"


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    # Compiled on first use, not at import: every llmrelay module imports
    # this one, and a program that never fails never redacts anything.
    return re.compile(_KEY_SOURCE), re.compile(_QUERY_KEY_SOURCE)


if TYPE_CHECKING:
    KEY_PATTERN: re.Pattern[str]
    """The compiled key shapes, for callers that scrub text of their own."""


def __getattr__(name: str) -> Any:
    if name == "KEY_PATTERN":
        return _patterns()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secrets and anything shaped like an API key with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    key_pattern, query_key = _patterns()
    text = key_pattern.sub(REDACTED, text)
    return query_key.sub(r"\1" + REDACTED, text)


def mask(secret: str | None) -> str:
    """A display form that tells two keys apart without revealing either."""
    if not secret:
        return "<not set>"
    if len(secret) <= 12:
        return REDACTED
    return f"{secret[:6]}...{secret[-3:]}"
