"""One vocabulary: ``Operation`` names the operations for the pipeline, ``capabilities`` and ``supports``."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from llmrelay.core import Capability, Operation, Provider, create_provider
from llmrelay.core.errors import CapabilityNotSupportedError
from llmrelay.core.provider import CORE_OPERATIONS

from tests.support.fake_provider import FakeProvider


def test_operations_are_the_method_names_as_plain_strings() -> None:
    assert [op.value for op in Operation] == [
        "execute",
        "stream_execute",
        "list_models",
        "validate_config",
        "get_credits",
        "get_generation_stats",
        "embed",
    ]
    for op in Operation:
        # Metrics labels, cache keys and log lines read as before the enum.
        assert op == op.value and str(op) == op.value and f"{op}" == op.value
        assert "%s" % op == op.value  # noqa: UP031  # as the logging module formats it
        assert hash(op) == hash(op.value) and {op.value: 1}[op] == 1
        assert callable(getattr(Provider, op.value))
    assert json.dumps({Operation.EXECUTE: [Operation.STREAM]}) == '{"execute": ["stream_execute"]}'


def test_capability_names_are_the_same_operations() -> None:
    assert Capability.CHAT is Operation.EXECUTE
    assert Capability.STREAM is Operation.STREAM
    assert Capability.MODELS is Operation.LIST_MODELS
    assert Capability.VALIDATE is Operation.VALIDATE
    assert Capability.CREDITS is Operation.CREDITS
    assert Capability.GENERATION_STATS is Operation.GENERATION_STATS
    assert Capability.EMBEDDINGS is Operation.EMBED
    assert Capability.CORE == CORE_OPERATIONS == {"execute", "stream_execute", "list_models", "validate_config"}
    # The older names are accepted wherever an operation is parsed.
    assert Operation("chat") is Operation.EXECUTE and Operation("embeddings") is Operation.EMBED
    with pytest.raises(ValueError):
        Operation("teleport")


@pytest.mark.parametrize("asked", [Capability.CREDITS, Operation.CREDITS, "get_credits", "credits"])
def test_supports_answers_the_same_for_every_spelling(asked: Any) -> None:
    provider = FakeProvider()
    assert provider.supports(asked)
    assert not provider.supports("embeddings") and not provider.supports(Operation.EMBED)
    assert not provider.supports("teleport")


def test_a_provider_declaring_the_older_names_offers_the_same_operations() -> None:
    class Legacy(FakeProvider):
        name = "legacy"
        capabilities = frozenset({"chat", "stream", "models", "validate", "credits"})

    assert Legacy.capabilities == CORE_OPERATIONS | {Operation.CREDITS}
    assert all(isinstance(op, Operation) for op in Legacy.capabilities)
    assert Legacy().supports(Operation.CREDITS) and not Legacy().supports("generation_stats")


def test_a_capability_that_is_no_operation_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"Odd.capabilities: 'teleport' is not an operation \(one of execute, "):

        class Odd(FakeProvider):
            name = "odd"
            capabilities = frozenset({"chat", "teleport"})


def test_an_unsupported_operation_is_named_as_before() -> None:
    provider = create_provider("fake", registry=_registry())
    with pytest.raises(CapabilityNotSupportedError) as caught:
        provider.embed({"input": "x"})
    assert caught.value.capability == "embeddings"
    assert str(caught.value) == (
        "[fake] embeddings is not supported by this provider (check `provider.capabilities` before calling)"
    )


def test_the_layered_provider_has_the_identity_of_the_provider_it_wraps() -> None:
    provider = create_provider(
        "groq", registry=_registry(), config={"providers": {"groq": {"type": "fake", "reply": "hey"}}}
    )
    assert isinstance(provider, Provider)
    inner = provider.inner  # type: ignore[attr-defined]
    assert isinstance(inner, FakeProvider)
    assert (provider.name, provider.instance_name) == ("fake", "groq") == (inner.name, inner.instance_name)
    assert provider.capabilities == inner.capabilities == FakeProvider.capabilities
    assert provider.settings is inner.settings and provider.base_url == inner.base_url
    assert provider.supports("credits") and not provider.supports(Operation.EMBED)
    assert provider.execute({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).text == "hey: hi"


def test_a_provider_validates_keyword_fields_without_importing_the_config_module() -> None:
    code = """
import sys
from llmrelay.core.errors import ConfigurationError
from tests.support.fake_provider import FakeProvider
provider = FakeProvider(reply="hi")
try:
    FakeProvider(reply=3)
except ConfigurationError as error:
    message = str(error)
print("llmrelay.core.config" in sys.modules, provider.settings.reply, message)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, reply, message = out.strip().split(" ", 2)
    assert (loaded, reply) == ("False", "hi")
    assert message.startswith("FakeProvider(...): reply: Input should be a valid string")


def _registry() -> Any:
    from llmrelay.core import PluginRegistry

    from tests.support import fake_provider

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    return registry
