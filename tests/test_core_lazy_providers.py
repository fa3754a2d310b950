"""Providers registered by path are imported only when a program builds them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from llmrelay.core import PluginRegistry, create_provider, hookimpl
from llmrelay.core.errors import PluginLoadError, UnknownProviderError

KEY = "sk-or-v1-" + "5a5a5a5a5a5a5a5a" * 4
HI = {"model": "fake/model", "messages": [{"role": "user", "content": "hello there"}]}


class ByPath:
    def __init__(self, *registrations: tuple[object, str | None]) -> None:
        self.registrations = registrations

    @hookimpl
    def llmrelay_register_providers(self, register: Callable[..., None]) -> None:
        for target, name in self.registrations:
            if name is None:
                register(target)
            else:
                register(target, name=name)


def _registry(*registrations: tuple[object, str | None], strict: bool = False) -> PluginRegistry:
    registry = PluginRegistry(load_entry_points=False, strict=strict)
    registry.register(ByPath(*registrations), name="by-path")
    return registry


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_provider_registered_by_path_is_imported_when_first_built(module_dir: Path) -> None:
    (module_dir / "lazy_echo.py").write_text(
        textwrap.dedent("""
        from tests.support.fake_provider import FakeProvider

        class LazyEcho(FakeProvider):
            name = "lazy-echo"
    """)
    )
    registry = _registry(("lazy_echo:LazyEcho", "lazy-echo"))
    entry = registry.providers()["lazy-echo"]
    assert (entry.target, entry.plugin, entry.loaded) == ("lazy_echo:LazyEcho", "by-path", False)
    assert "lazy_echo" not in sys.modules
    with create_provider("lazy-echo", registry=registry) as provider:
        assert provider.execute(HI).text == "hello: hello there"
    assert entry.loaded and entry.cls.__module__ == "lazy_echo"
    sys.modules.pop("lazy_echo", None)


def test_a_provider_class_registered_directly_shows_the_same_target() -> None:
    from tests.support.fake_provider import FakeProvider

    registry = _registry((FakeProvider, None))
    entry = registry.providers()["fake"]
    assert entry.loaded and entry.target == "tests.support.fake_provider:FakeProvider"


def test_a_path_that_fails_to_import_is_a_typed_error_naming_the_plugin(module_dir: Path) -> None:
    (module_dir / "broken_sdk.py").write_text(f"raise ImportError('needs the vendor SDK (key {KEY})')\n")
    from tests.support.fake_provider import FakeProvider

    registry = _registry(("broken_sdk:Provider", "broken"), (FakeProvider, None))
    with pytest.raises(PluginLoadError) as caught:
        create_provider("broken", registry=registry)
    message = str(caught.value)
    assert message.startswith(
        "provider 'broken' of llmrelay plugin 'by-path' from package 'unknown' (broken_sdk:Provider) "
        "failed to import: ImportError: needs the vendor SDK"
    )
    assert KEY not in message
    assert [(f.name, f.target) for f in registry.failed] == [("by-path", "broken_sdk:Provider")]
    # The plugin's other provider is untouched.
    with create_provider("fake", registry=registry) as provider:
        assert provider.execute(HI).text == "hello: hello there"


@pytest.mark.parametrize(
    ("target", "name", "expected"),
    [
        ("json:JSONDecoder", "decoder", "is <class 'json.decoder.JSONDecoder'>, not a Provider subclass"),
        ("tests.support.fake_provider:FakeProvider", "other", "has name = 'fake'; a provider registered by path"),
        ("tests.support.fake_provider:Missing", "missing", "failed to import: AttributeError"),
    ],
)
def test_a_path_to_the_wrong_thing_is_reported_when_built(target: str, name: str, expected: str) -> None:
    registry = _registry((target, name))
    assert name in registry.providers()
    with pytest.raises(PluginLoadError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        registry.provider_class(name)


@pytest.mark.parametrize(
    ("target", "name", "error"),
    [
        (
            "tests.support.fake_provider:FakeProvider",
            None,
            "registered 'tests.support.fake_provider:FakeProvider' without a name",
        ),
        ("tests.support.fake_provider.FakeProvider", "fake", "a provider path is 'package.module:ClassName'"),
    ],
)
def test_a_malformed_registration_skips_the_plugin_with_a_warning(
    target: str, name: str | None, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = _registry((target, name))
    with caplog.at_level(logging.WARNING, logger="llmrelay.plugins"):
        assert registry.providers() == {}
    assert error in caplog.text and error in registry.failed[0].error
    with pytest.raises(UnknownProviderError):
        registry.provider_class("fake")
    with pytest.raises(PluginLoadError, match="without a name" if name is None else "package.module:ClassName"):
        _registry((target, name), strict=True).providers()


def test_a_class_registered_under_another_name_is_refused() -> None:
    from tests.support.fake_provider import FakeProvider

    registry = _registry((FakeProvider, "not-fake"))
    assert registry.providers() == {}
    assert "registered <class 'tests.support.fake_provider.FakeProvider'> as 'not-fake', but its `name` is 'fake'" in (
        registry.failed[0].error
    )


PROBE = """
import json, sys
from llmrelay.core import create_provider, get_registry
{action}
print(json.dumps(sorted(m for m in sys.modules if m.startswith("llmrelay.providers."))))
"""


def _provider_modules_after(action: str) -> list[str]:
    code = PROBE.format(action=action)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# That building OpenRouter imports no other provider is part of the import
# budget (tests/test_core_import.py).


def test_listing_the_installed_providers_imports_none_of_them() -> None:
    loaded = _provider_modules_after("get_registry().providers()")
    assert loaded == ["llmrelay.providers.builtin"]
