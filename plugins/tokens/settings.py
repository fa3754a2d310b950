"""The ``[plugins.tokens]`` section of the config file.

The plugin is off unless the section says ``enabled = true``: it changes
what is sent upstream, which nobody should get by surprise.
"""

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TokenSettings"]


class TokenSettings(BaseModel):
    """How the tokens layer clamps a request's output budget to what its model allows."""

    # defer_build: with no [plugins.tokens] section, default_settings() stands
    # in and this schema is never built.
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True, defer_build=True)

    catalog_ttl: float = Field(
        default=3600.0, gt=0, description="seconds a fetched model list is used before it is fetched again"
    )
    retry_interval: float = Field(
        default=60.0,
        gt=0,
        description="seconds after a failed model-list fetch before the next try; requests pass through meanwhile",
    )
    margin: int = Field(default=256, ge=0, description="tokens kept free when the budget comes from the context length")
    bytes_per_token: float = Field(
        default=4.0,
        gt=0,
        description="UTF-8 bytes counted as one prompt token by the estimate (lower is more cautious)",
    )
    set_default: bool = Field(
        default=False, description="give a request that sets no max_tokens the model's whole budget as max_tokens"
    )
