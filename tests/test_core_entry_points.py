"""Third-party packages plug in through the ``llmrelay`` entry-point group, with isolation.

The packages under ``tests/packages/`` are installed for real: pip builds
each one (setuptools, from its own ``pyproject.toml``) and installs the wheel
into a temporary ``--target`` directory. Putting that directory on
``sys.path`` is all it takes for ``importlib.metadata`` to see the package's
``.dist-info`` and its entry points, exactly as for a package installed in
site-packages, while the development environment stays untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from llmrelay.core import ConfigurationError, LayeredProvider, PluginRegistry, create_provider, hookimpl
from llmrelay.core.errors import PluginLoadError
from llmrelay.core.plugins import DISABLE_ENV, STRICT_ENV, get_registry, reset_registry

PACKAGES = Path(__file__).parent / "packages"
KEY = "sk-or-v1-" + "0f1e2d3c4b5a6978" * 4
HI = {"model": "parrot/model", "messages": [{"role": "user", "content": "hello there"}]}


def _pip_install(package: str, root: Path) -> Path:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = root / "src" / package
    shutil.copytree(PACKAGES / package, source)
    target = root / "site" / package
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(source),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(
            f"installing tests/packages/{package} failed (it is built with the setuptools of this "
            f'environment, from the dev extra: pip install -e ".[dev]"):\n{result.stdout}\n{result.stderr}'
        )
    return target


@pytest.fixture(scope="session")
def installed_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("third-party")
    return {name: _pip_install(name, root) for name in ("llmrelay-parrot", "llmrelay-broken")}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("LLMRELAY_", "PARROT_")):
            monkeypatch.delenv(name)
    yield
    reset_registry()


@pytest.fixture
def parrot(installed_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed_packages["llmrelay-parrot"]))


@pytest.fixture
def broken(installed_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed_packages["llmrelay-broken"]))


def own_failures() -> list[str]:
    """llmrelay's own entry points that do not load yet (modules still being written)."""
    return [f.name for f in PluginRegistry(strict=False, disabled=[]).failed if f.distribution == "llmrelay"]


# --------------------------------------------------------------------------- a working third-party package


@pytest.mark.usefixtures("parrot")
def test_the_installed_package_is_a_real_distribution_with_an_entry_point() -> None:
    dist = metadata.distribution("llmrelay-parrot")
    assert dist.version == "1.2.3"
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "llmrelay"] == [
        ("parrot", "llmrelay_parrot.plugin")
    ]
    # Nothing about it is written in llmrelay's own metadata.
    own = {ep.name for ep in metadata.distribution("llmrelay").entry_points if ep.group == "llmrelay"}
    assert "parrot" not in own


@pytest.mark.usefixtures("parrot", "broken")
def test_the_group_is_read_as_importlib_metadata_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry loads what importlib.metadata lists for the group, once per
    # name: a package found twice on the path (the first copy wins) and one
    # whose file has other groups around the llmrelay one included.
    twin = tmp_path / "llmrelay_twin-1.0.dist-info"
    twin.mkdir()
    (twin / "METADATA").write_text("Metadata-Version: 2.1\nName: llmrelay-twin\nVersion: 1.0\n")
    (twin / "entry_points.txt").write_text(
        "[console_scripts]\ntwin = twin:main\n\n[llmrelay]\ntwin = twin.plugin\n\n[other]\nx = y\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))  # the same package twice on the path

    expected = sorted(ep.name for ep in metadata.entry_points(group="llmrelay"))
    registry = PluginRegistry(strict=False)
    seen = [p.name for p in registry.loaded] + [f.name for f in registry.failed]
    assert sorted(seen) == expected
    assert seen.count("twin") == 1 and "parrot" in seen
    # twin.plugin does not exist: reported against its distribution, read from its METADATA.
    assert [(f.name, f.distribution, f.target) for f in registry.failed if f.name == "twin"] == [
        ("twin", "llmrelay-twin", "twin.plugin")
    ]


@pytest.mark.usefixtures("parrot")
def test_a_third_party_provider_and_layer_are_picked_up_with_no_change_to_llmrelay() -> None:
    registry = PluginRegistry()

    entry = registry.providers()["parrot"]
    assert entry.cls.__module__ == "llmrelay_parrot.plugin"
    assert (entry.plugin, entry.distribution) == ("parrot", "llmrelay-parrot")
    info = next(p for p in registry.loaded if p.name == "parrot")
    assert (info.distribution, info.version, info.module) == ("llmrelay-parrot", "1.2.3", "llmrelay_parrot.plugin")
    assert "stamp" in [spec.name for spec in registry.layer_specs()]

    with create_provider("parrot", registry=registry, api_key=KEY) as provider:
        assert isinstance(provider, LayeredProvider)
        assert provider.execute(HI).text == "parrot: hello there"
        with provider.stream_execute(HI) as stream:
            assert stream.final_response().text == "hello there "
        stamp = provider.layer("stamp")
        assert stamp is not None and stamp.seen == ["execute", "stream_execute"]
    assert stamp.closed


@pytest.mark.usefixtures("parrot")
def test_the_third_party_provider_builds_from_the_environment_and_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARROT_API_KEY", KEY)
    reset_registry()
    # The process-wide registry, as an application would use it.
    with create_provider("parrot") as provider:
        assert provider.settings.key() == KEY
        assert provider.execute(HI).text == "parrot: hello there"

    config = tmp_path / "relay.toml"
    config.write_text('[providers.parrot]\nprefix = "polly"\n\n[plugins.stamp]\nlabel = "seen-by-stamp"\n')
    with create_provider("parrot", config=config) as provider:
        assert provider.execute(HI).text == "polly: hello there"
        assert provider.layer("stamp").label == "seen-by-stamp"

    config.write_text("[plugins.stamp]\nlabel = 3\n")
    with pytest.raises(ConfigurationError) as info:
        create_provider("parrot", config=config)
    assert str(info.value) == f"{config}: plugins.stamp.label: Input should be a valid string (got int 3)"

    config.write_text("[plugins.stamp]\nenabled = false\n")
    with create_provider("parrot", config=config) as provider:
        assert provider.layer("stamp") is None


def test_a_package_not_on_the_path_is_not_seen(installed_packages: dict[str, Path]) -> None:
    # The control for the tests above: without the install, no parrot.
    registry = PluginRegistry()
    assert "parrot" not in registry.providers()
    assert "stamp" not in [spec.name for spec in registry.layer_specs()]


@pytest.mark.usefixtures("parrot")
def test_strict_mode_with_only_working_packages_loads_them() -> None:
    registry = PluginRegistry(strict=True, disabled=own_failures())
    assert "parrot" in registry.providers()
    assert registry.failed == []


# --------------------------------------------------------------------------- isolation of a broken package


@pytest.mark.usefixtures("parrot", "broken")
def test_a_broken_package_logs_a_warning_naming_it_and_the_rest_still_load(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay.plugins"):
        registry = PluginRegistry()

    warnings = [r.getMessage() for r in caplog.records if "'broken'" in r.getMessage()]
    assert warnings == [
        "llmrelay plugin 'broken' from package 'llmrelay-broken' failed to load (llmrelay_broken.plugin): "
        "RuntimeError: llmrelay_broken is broken on purpose; skipping it"
    ]
    failed = next(f for f in registry.failed if f.name == "broken")
    assert failed.distribution == "llmrelay-broken"
    assert failed.error == "RuntimeError: llmrelay_broken is broken on purpose"
    assert "broken" not in [p.name for p in registry.loaded]
    # Everything else is there and works.
    assert "parrot" in registry.providers()
    with create_provider("parrot", registry=registry, api_key=KEY) as provider:
        assert provider.execute(HI).text == "parrot: hello there"


@pytest.mark.usefixtures("parrot", "broken")
def test_strict_mode_by_argument_raises() -> None:
    with pytest.raises(PluginLoadError) as info:
        PluginRegistry(strict=True, disabled=own_failures())
    assert str(info.value) == (
        "llmrelay plugin 'broken' from package 'llmrelay-broken' failed to load (llmrelay_broken.plugin): "
        f"RuntimeError: llmrelay_broken is broken on purpose [strict mode: unset {STRICT_ENV} to skip it]"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.usefixtures("parrot", "broken")
@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_strict_mode_by_environment_raises(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(STRICT_ENV, value)
    with pytest.raises(PluginLoadError, match="'broken' from package 'llmrelay-broken'"):
        PluginRegistry(disabled=own_failures())
    # The argument wins over the environment.
    assert "parrot" in PluginRegistry(strict=False).providers()


@pytest.mark.usefixtures("parrot", "broken")
def test_strict_mode_off_in_the_environment_is_lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "0")
    assert "broken" in [f.name for f in PluginRegistry().failed]


# --------------------------------------------------------------------------- disabling by name


@pytest.mark.usefixtures("parrot", "broken")
def test_plugins_are_disabled_by_name_with_the_argument(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay.plugins"):
        registry = PluginRegistry(disabled=["broken", "parrot"])
    assert "broken" not in caplog.text
    assert {"parrot", "broken"}.isdisjoint(p.name for p in registry.loaded)
    assert {"parrot", "broken"}.isdisjoint(f.name for f in registry.failed)
    assert "parrot" not in registry.providers()
    assert "stamp" not in [spec.name for spec in registry.layer_specs()]
    # Strict mode has nothing to complain about once the broken one is off.
    PluginRegistry(strict=True, disabled=["broken", *own_failures()])


@pytest.mark.usefixtures("parrot", "broken")
def test_plugins_are_disabled_by_name_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, " broken , parrot,")
    registry = PluginRegistry()
    assert registry.disabled == {"broken", "parrot"}
    assert "parrot" not in registry.providers()
    assert "broken" not in [f.name for f in registry.failed]
    # A disabled plugin's config section is not an error.
    with pytest.raises(ConfigurationError, match="unknown provider 'parrot'"):
        create_provider("parrot", registry=registry, config={"plugins": {"parrot": {}}})


# --------------------------------------------------------------------------- the process-wide registry


@pytest.mark.usefixtures("parrot")
def test_reset_registry_picks_up_a_newly_installed_package(
    installed_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_registry()
    first = get_registry()
    assert get_registry() is first
    assert "broken" not in [f.name for f in first.failed]
    monkeypatch.syspath_prepend(str(installed_packages["llmrelay-broken"]))
    assert get_registry() is first  # loaded once
    reset_registry()
    assert "broken" in [f.name for f in get_registry().failed]


# --------------------------------------------------------------------------- no network while loading


@pytest.mark.usefixtures("parrot", "broken")
def test_loading_plugins_makes_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network is not allowed while loading plugins")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    registry = PluginRegistry()
    registry.providers()
    registry.layer_specs()
    with create_provider("parrot", registry=registry, api_key=KEY):
        pass
    assert attempts == []


# --------------------------------------------------------------------------- a plugin whose hook raises


class FailingHooks:
    """Imports fine, then fails when asked for its providers and layers."""

    @hookimpl
    def llmrelay_register_providers(self, register: object) -> None:
        raise RuntimeError(f"provider hook broke (key {KEY})")

    @hookimpl
    def llmrelay_register_layers(self, register: object) -> None:
        raise ValueError("layer hook broke")


def test_a_plugin_whose_hooks_raise_is_skipped_and_the_rest_still_work(caplog: pytest.LogCaptureFixture) -> None:
    from tests.support import fake_provider

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(FailingHooks(), name="flaky")
    with caplog.at_level(logging.WARNING, logger="llmrelay.plugins"):
        providers = registry.providers()
        specs = registry.layer_specs()
    assert list(providers) == ["fake"]
    assert specs == []
    assert [(f.name, f.target) for f in registry.failed] == [
        ("flaky", "llmrelay_register_providers"),
        ("flaky", "llmrelay_register_layers"),
    ]
    assert (
        "llmrelay plugin 'flaky' from package 'unknown' failed in llmrelay_register_layers: "
        "ValueError: layer hook broke; skipping it" in caplog.text
    )
    assert KEY not in caplog.text and KEY not in str(registry.failed)
    with create_provider("fake", registry=registry) as provider:
        assert provider.execute(HI).text == "hello: hello there"


def test_a_plugin_whose_hook_raises_is_an_error_in_strict_mode() -> None:
    registry = PluginRegistry(load_entry_points=False, strict=True)
    registry.register(FailingHooks(), name="flaky")
    with pytest.raises(
        PluginLoadError, match="plugin 'flaky' from package 'unknown' failed in llmrelay_register_layers"
    ):
        registry.layer_specs()


def test_a_provider_class_without_a_name_is_reported() -> None:
    class Nameless:
        @hookimpl
        def llmrelay_register_providers(self, register: Callable[[type], None]) -> None:
            register(dict)

    registry = PluginRegistry(load_entry_points=False)
    registry.register(Nameless(), name="nameless")
    assert registry.providers() == {}
    assert registry.failed[0].error.startswith("ConfigurationError: plugin 'nameless' registered <class 'dict'>")
