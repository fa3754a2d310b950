"""Settings every provider shares: key, base URL, timeouts, retries, pool, proxies.

A provider declares its settings as a subclass of :class:`ProviderSettings`
(``OpenRouterSettings`` adds attribution headers, for example). Unknown
fields are rejected so a typo in a config file is reported, not ignored;
:func:`validate_settings` turns such a mistake into one readable
:class:`~llmrelay.core.errors.ConfigurationError` naming the field.
"""

import difflib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import ConfigurationError

__all__ = [
    "PoolSettings",
    "ProviderSettings",
    "RetrySettings",
    "TimeoutSettings",
    "default_settings",
    "validate_settings",
]

M = TypeVar("M", bound=BaseModel)

# A pattern source, compiled by re (and cached there) when a bad value is first described.
_SECRET_NAMES = r"(?i)(key|secret|token|password)"


# defer_build: a settings class builds its validator when it first
# validates, so importing every installed provider does not build the
# validators of the ones a program never creates. Subclasses of
# ProviderSettings inherit it.
_STRICT = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


def default_settings(model: type[M]) -> M:
    """What ``model.model_validate({})`` gives, built from the fields' defaults without validating.

    A config file usually has no section for a plugin, and building a
    settings model's validator is the largest single cost of building a
    provider (``defer_build`` builds it on first validation). Every field
    takes its default as written (``model_construct``), so a settings model
    writes its defaults in validated form: ``1.0`` for a float, a nested
    model as an instance (``default_settings(Nested)``); llmrelay's own are
    tested for it. A model with a required field has no defaults to build:
    it is validated, and pydantic's error names the field.
    """
    if any(field.is_required() for field in model.model_fields.values()):
        return model.model_validate({})
    return model.model_construct()


class TimeoutSettings(BaseModel):
    """Seconds. Every call is bounded: nothing waits forever."""

    model_config = _STRICT

    connect: float = Field(default=10.0, gt=0, description="to open a TCP/TLS connection")
    read: float = Field(default=120.0, gt=0, description="for the response to a non-streamed call, between bytes")
    stream_idle: float = Field(default=60.0, gt=0, description="longest silence allowed inside a stream")


class RetrySettings(BaseModel):
    """Full-jitter exponential backoff, bounded by attempts and by total time."""

    model_config = _STRICT

    max_attempts: int = Field(default=3, ge=1, description="attempts in all, the first included")
    max_total_seconds: float = Field(default=60.0, gt=0, description="give up once this much time has passed")
    initial_backoff: float = Field(default=0.5, ge=0, description="backoff scale for the first retry")
    max_backoff: float = Field(default=8.0, ge=0, description="cap on one backoff")
    retry_statuses: frozenset[int] = Field(default=frozenset({408, 429, 500, 502, 503, 504}))
    retry_connection_errors: bool = True
    respect_retry_after: bool = True

    @field_validator("retry_statuses")
    @classmethod
    def _no_client_errors(cls, value: frozenset[int]) -> frozenset[int]:
        bad = sorted(s for s in value if s in (400, 401, 402, 403, 404))
        if bad:
            raise ValueError(f"statuses {bad} are client errors and are never retried")
        return value


class PoolSettings(BaseModel):
    """The urllib3 connection pool behind the provider's one ``requests.Session``."""

    model_config = _STRICT

    # Sized so that 16 threads sharing one provider never overflow the pool
    # (overflow makes urllib3 open and then discard extra connections).
    connections: int = Field(default=4, ge=1, description="hosts whose pools are kept")
    maxsize: int = Field(default=32, ge=1, description="connections kept per host")
    block: bool = Field(default=False, description="wait for a free connection instead of opening an extra one")


class ProviderSettings(BaseModel):
    """Settings common to HTTP providers. Subclass to add a provider's own."""

    model_config = _STRICT

    api_key: SecretStr | None = None
    base_url: str | None = None
    default_model: str | None = None
    timeout: TimeoutSettings = default_settings(TimeoutSettings)
    retry: RetrySettings = default_settings(RetrySettings)
    pool: PoolSettings = default_settings(PoolSettings)
    # Proxies are read once, here, never per call: {"https": "http://proxy:3128"}.
    # With trust_env the usual HTTPS_PROXY / NO_PROXY variables are read once
    # when the provider is built.
    proxies: dict[str, str] = Field(default_factory=dict)
    trust_env: bool = False
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers sent on every request")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        # The key belongs in api_key (a SecretStr), never in a plain dict
        # that would show up in reprs and dumps.
        if any(name.lower() in ("authorization", "x-api-key") for name in value):
            raise ValueError("put the API key in api_key, not in headers")
        return value

    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def public_dict(self) -> dict[str, Any]:
        """The settings with the key masked, for display."""
        data = self.model_dump(mode="json")
        if self.api_key is not None:
            data["api_key"] = "**********"
        return data


# --------------------------------------------------------------------------- validation


def validate_settings(
    model: type[M],
    data: Mapping[str, Any],
    *,
    source: str,
    prefix: str = "",
    origins: Mapping[str, str] | None = None,
) -> M:
    """Validate settings, turning pydantic's error into one readable ConfigurationError.

    ``origins`` maps dotted paths (``"timeout.read"``) to the environment
    variable each was read from, so the message names the variable to fix.
    """
    if not data:
        return default_settings(model)
    try:
        return model.model_validate(_with_nested_defaults(model, data))
    except ValidationError as exc:
        raise ConfigurationError(_format_errors(exc, source, prefix, model, origins)) from None


def _with_nested_defaults(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """A partial nested table merged over its field's own default, not over the nested model's defaults.

    ``AnthropicSettings.retry`` defaults to a ``RetrySettings`` that also
    retries 529; ``retry = { max_attempts = 4 }`` (or ``ANTHROPIC_RETRY__MAX_ATTEMPTS=4``)
    keeps that and changes one field, as tables merge field by field everywhere else.
    """
    merged = dict(data)
    for name, value in data.items():
        info = model.model_fields.get(name)
        if info is None or not isinstance(value, Mapping):
            continue
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel) and default.model_fields_set:
            merged[name] = {**{field: getattr(default, field) for field in default.model_fields_set}, **value}
    return merged


def _describe(value: Any, field: str) -> str:
    kind = type(value).__name__
    if re.search(_SECRET_NAMES, field) or isinstance(value, SecretStr):
        return kind
    if isinstance(value, Mapping):
        # A table's values may be secrets (a header holding a token): its keys say enough.
        return f"{kind} with keys {sorted(map(str, value))}"[:120]
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 60 else kind


def _field_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested settings model a location points into (``("timeout",)`` -> TimeoutSettings)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _did_you_mean(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    if model is None or not loc:
        return ""
    parent = _field_model(model, loc[:-1])
    if parent is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _from_environment(loc: tuple[str, ...], origins: Mapping[str, str]) -> str:
    """Which environment variable set the value at ``loc``, or (a table's, a model's error) values beneath it."""
    for end in range(len(loc), 0, -1):
        variable = origins.get(".".join(loc[:end]))
        if variable is not None:
            return f" (from environment variable {variable})"
    below = ".".join(loc) + "." if loc else ""
    variables = sorted({variable for path, variable in origins.items() if path.startswith(below)})
    if not variables:
        return ""
    return f" (set here from the environment: {', '.join(variables)})"


def _format_errors(
    exc: ValidationError,
    source: str,
    prefix: str,
    model: type[BaseModel] | None = None,
    origins: Mapping[str, str] | None = None,
) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if origins:
            field += _from_environment(tuple(str(part) for part in error["loc"]), origins)
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{field}: unknown setting{_did_you_mean(model, tuple(error['loc']))}")
            continue
        if kind == "missing":
            lines.append(f"{field}: required, but not set")
            continue
        given = _describe(error.get("input"), loc)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{field}: {message} (got {given})")
    head = f"{source}: " if source else ""
    return head + "; ".join(lines)
