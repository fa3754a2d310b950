"""The ``[gateway]`` section of the config file, read by ``llmrelay serve``.

::

    [gateway]
    api_keys = ["${LLMRELAY_GATEWAY_KEY}"]   # clients send Authorization: Bearer KEY or x-api-key: KEY
    default_provider = "openrouter"          # else the file's default_provider
    providers = ["openrouter", "anthropic"]  # instances served (default: every [providers.<name>])
    routing = [{ suffix = "-anthropic", provider = "anthropic" }]   # rules_from_config form
    host = "127.0.0.1"
    port = 8080
    workers = 1
    threads = 32                             # concurrent requests per worker (gunicorn gthread)
    max_body_bytes = 10485760                # larger bodies get 413
    graceful_timeout = 30                    # SIGTERM: in-flight streams get this long to finish
    ping_interval = 10                       # keep-alive on a stream idle this long (seconds)
    metrics_public = false                   # true: /metrics answers without a gateway key
    redis_url = "redis://127.0.0.1:6379/0"   # optional: /metrics and /api/performance over every machine
    redis_namespace = "llmrelay:gateway"

Gateway keys are ``SecretStr``: never in a repr, a log line or an error.
With no ``api_keys`` the environment variable ``LLMRELAY_GATEWAY_KEY`` is
used; with neither, the gateway refuses to start (an open relay would spend
the upstream keys of whoever runs it).
"""

import importlib.util
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ..config import RelayConfig, validate_settings
from ..errors import ConfigurationError

__all__ = ["GATEWAY_KEY_ENV", "GatewaySettings", "gateway_settings"]

GATEWAY_KEY_ENV = "LLMRELAY_GATEWAY_KEY"


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_keys: list[SecretStr] = Field(default_factory=lambda: [])
    default_provider: str | None = None
    providers: list[str] | None = None
    routing: list[dict[str, Any]] = Field(default_factory=lambda: [])
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=32, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    graceful_timeout: float = Field(default=30.0, gt=0)
    metrics_public: bool = False
    redis_url: str | None = None
    redis_namespace: str = "llmrelay:gateway"  # gateways sharing it share their figures
    # Seconds without an upstream event before a stream gets a keep-alive (SSE comment / Anthropic ping).
    ping_interval: float = Field(default=10.0, gt=0)
    # How often a worker publishes its metrics for the others (seconds).
    publish_interval: float = Field(default=1.0, gt=0)

    @field_validator("api_keys")
    @classmethod
    def _no_blank_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value().strip() for key in keys):
            raise ValueError("a gateway key must not be empty")
        return keys

    def keys(self) -> list[bytes]:
        """The accepted keys as bytes, for constant-time comparison."""
        return [key.get_secret_value().encode() for key in self.api_keys]


def gateway_settings(config: RelayConfig, **overrides: Any) -> GatewaySettings:
    """The validated ``[gateway]`` section, command-line ``overrides`` applied (``None`` values ignored)."""
    data = dict(config.gateway)
    data.update({name: value for name, value in overrides.items() if value is not None})
    if not data.get("api_keys") and os.environ.get(GATEWAY_KEY_ENV):
        data["api_keys"] = [os.environ[GATEWAY_KEY_ENV]]
    settings = validate_settings(GatewaySettings, data, source=config.source, prefix="gateway")
    if not settings.api_keys:
        raise ConfigurationError(
            f"{config.source}: gateway.api_keys: required, but not set "
            f'(set {GATEWAY_KEY_ENV}, or add api_keys = ["${{{GATEWAY_KEY_ENV}}}"] to [gateway])'
        )
    if settings.redis_url and importlib.util.find_spec("redis") is None:
        # Checked here, before gunicorn starts: a worker failing on the import would take it down with a traceback.
        raise ConfigurationError(
            f"{config.source}: gateway.redis_url is set but the redis package is not installed "
            "(pip install 'llmrelay[redis]', or remove redis_url)"
        )
    return settings
