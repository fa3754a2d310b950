"""The example plugin's own tests: how a plugin author tests against llmrelay.

Run from this directory after ``pip install -e .`` (the entry point is then
installed), or from anywhere with llmrelay installed: the first tests
register the plugin module by hand, exactly as the entry point would.
"""

from __future__ import annotations

import logging
from importlib import metadata

import pytest
from llmrelay.core import ConfigurationError, PluginRegistry, create_provider
from llmrelay_example import CallLogLayer, EchoProvider, plugin

REQUEST = {"model": "echo", "messages": [{"role": "user", "content": "hello agent"}]}


@pytest.fixture
def registry() -> PluginRegistry:
    reg = PluginRegistry(load_entry_points=False)
    reg.register(plugin, name="example")
    return reg


def test_provider_from_the_registry(registry):
    provider = create_provider("echo", registry=registry, plugins=False, prefix="> ")
    assert isinstance(provider, EchoProvider)
    assert provider.execute(REQUEST).text == "> hello agent"
    assert provider.stream_execute(REQUEST).final_response().text == "> hello agent"


def test_settings_are_validated(registry):
    with pytest.raises(ConfigurationError, match="prefx"):
        create_provider("echo", registry=registry, plugins=False, prefx="x")


def test_layer_is_opt_in_and_configured_from_the_config(registry, caplog):
    plain = create_provider("echo", registry=registry)
    assert plain.layer("call_log") is None

    config = {"providers": {"bot": {"type": "echo"}}, "plugins": {"call_log": {"enabled": True, "level": "WARNING"}}}
    logged = create_provider("bot", config=config, registry=registry)
    layer = logged.layer("call_log")
    assert isinstance(layer, CallLogLayer)
    records = []
    layer.sink = records.append
    with caplog.at_level(logging.WARNING, logger="llmrelay.call_log"):
        logged.execute(REQUEST)
        with logged.stream_execute(REQUEST) as stream:
            next(stream)  # closed early: the layer still hears how it ended
    assert [(r["operation"], r["provider"], r["outcome"]) for r in records] == [
        ("execute", "bot", "ok"),
        ("stream_execute", "bot", "cancelled"),
    ]
    assert "execute bot echo -> ok" in caplog.text


def test_entry_point_is_installed():
    names = {ep.name: ep.value for ep in metadata.entry_points(group="llmrelay")}
    if "example" not in names:
        pytest.skip("the package is not installed (pip install -e examples/llmrelay-example-plugin)")
    assert names["example"] == "llmrelay_example.plugin"
    assert create_provider("echo", plugins=False).execute(REQUEST).text == "echo: hello agent"
