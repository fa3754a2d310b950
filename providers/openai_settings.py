"""The settings of the OpenAI-compatible provider (``type = "openai"``).

Kept apart from :mod:`llmrelay.providers.openai_compat` so that building a
subclass with settings of its own (OpenRouter's) does not define them.
"""

from llmrelay.core.settings import ProviderSettings
from pydantic import Field

__all__ = ["OpenAICompatibleSettings"]


class OpenAICompatibleSettings(ProviderSettings):
    """The common settings plus OpenAI's optional organization / project headers."""

    base_url: str | None = Field(default=None, description="None: the provider's default_base_url (OpenAI's API)")
    organization: str | None = Field(default=None, description="sent as OpenAI-Organization")
    project: str | None = Field(default=None, description="sent as OpenAI-Project")
    stream_usage: bool = Field(
        default=True,
        description="ask for a usage chunk at the end of streams (stream_options.include_usage); "
        "turn off for servers that reject stream_options",
    )
