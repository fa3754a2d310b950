"""The metrics log stream: one structured event per call, and custom events a program adds.

Every event is a log record on logger ``llmrelay.metrics`` whose
``llmrelay_event`` attribute is a flat dict; its ``event`` key says what
it is: ``"llmrelay.call"`` for a call the metrics layer counted (see
:meth:`~.collector.CallRecord.as_event`), ``"llmrelay.custom"`` for
:func:`record_event`. A log handler or formatter picks the dict up from
``record.llmrelay_event`` and ships it as it is.

Custom events never carry a secret: a field whose name says it holds one
(``api_key``, ``secret``, ``token``, ``password``, ``authorization``,
``cookie``, ... in snake_case, kebab-case or camelCase) is logged as
``***``, at any depth of nested dicts; any other text is passed through
:func:`llmrelay.core.secrets.redact`, which masks what looks like a key.
``tokens`` (a count, as in ``prompt_tokens``) is not a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from llmrelay.core.errors import ConfigurationError
from llmrelay.core.secrets import REDACTED, redact
from pydantic import SecretBytes, SecretStr

__all__ = ["CALL_EVENT", "CUSTOM_EVENT", "EVENT_ATTRIBUTE", "LOGGER_NAME", "log", "record_event"]

LOGGER_NAME = "llmrelay.metrics"
EVENT_ATTRIBUTE = "llmrelay_event"  # the log record's attribute holding the event dict
CALL_EVENT = "llmrelay.call"
CUSTOM_EVENT = "llmrelay.custom"

log = logging.getLogger(LOGGER_NAME)

# Words of a field name that mark its value as a secret. Not "tokens": prompt_tokens is a count.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "key",
        "keys",
        "passphrase",
        "passwd",
        "password",
        "passwords",
        "pwd",
        "secret",
        "secrets",
        "token",
    }
)
# snake_case, kebab-case, camelCase and ALLCAPS runs: "openrouterApiKey" -> openrouter, api, key.
_WORD = r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+"
_RESERVED = ("event", "name")


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret, by the words it is made of."""
    words = [word.lower() for word in re.findall(_WORD, name)]
    return any(word in _SECRET_WORDS for word in words) or "apikey" in "".join(words)


def _safe(value: Any) -> Any:
    """``value`` as it may be logged: text redacted, dicts' secret fields masked, other objects as redacted text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(key): REDACTED if is_secret_name(str(key)) else _safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)  # as the call event writes its cost: exact, and JSON-friendly
    return redact(str(value))


def record_event(name: str, /, **fields: Any) -> dict[str, Any]:
    """Log a custom performance event on the metrics log stream; returns the event as logged.

    ::

        from llmrelay.plugins.metrics import record_event

        record_event("document_generation", duration_ms=1250, success=True, pages=3)

    The record goes to logger ``llmrelay.metrics`` at INFO, with
    ``record.llmrelay_event == {"event": "llmrelay.custom", "name":
    "document_generation", "duration_ms": 1250, "success": True, "pages":
    3}``, next to the per-call events (``"event": "llmrelay.call"``). Values
    are made safe to log (see the module's docstring); ``event`` and
    ``name`` are the event's own keys and cannot be fields.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"record_event needs a non-empty event name (a str), got {name!r}")
    clash = [key for key in _RESERVED if key in fields]
    if clash:
        raise ConfigurationError(
            f"record_event: {', '.join(clash)} cannot be a field name (the event's own keys); rename the field"
        )
    event: dict[str, Any] = {"event": CUSTOM_EVENT, "name": redact(name)}
    for key, value in fields.items():
        event[key] = REDACTED if is_secret_name(key) else _safe(value)
    if log.isEnabledFor(logging.INFO):
        details = " ".join(f"{key}={value!r}" for key, value in event.items() if key not in _RESERVED)
        log.info("event %s %s", event["name"], details, extra={EVENT_ATTRIBUTE: event})
    return event
