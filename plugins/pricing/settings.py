"""The ``[plugins.pricing]`` section of the config file.

Example::

    [plugins.pricing]
    markup = 1.3        # every price and cost callers see is the service's x 1.3

The default, 1, shows the service's own prices; with it, and no provider
asking for the shipped-catalog fallback, the plugin adds no layer at all.
"""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PricingSettings"]


class PricingSettings(BaseModel):
    """What the pricing layer does to the prices and costs a provider returns."""

    # defer_build: with no [plugins.pricing] section, default_settings() stands in.
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True, defer_build=True)

    markup: Decimal = Field(
        default=Decimal(1),
        gt=0,
        allow_inf_nan=False,
        description="multiplier on every price and cost shown (model lists, usage.cost of chat, "
        "streams and embeddings); 1.3 is the original reports' 30%",
    )
