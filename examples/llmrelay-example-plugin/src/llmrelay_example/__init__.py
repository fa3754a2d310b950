"""An example llmrelay plugin package: an offline echo provider and a call-log layer."""

from .call_log import CallLogLayer, CallLogSettings
from .echo import EchoProvider, EchoSettings

__all__ = ["CallLogLayer", "CallLogSettings", "EchoProvider", "EchoSettings"]
