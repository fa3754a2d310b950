"""Every provider operation passes through the plugins' layers, in position order, built once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from llmrelay.core import (
    Call,
    CallOptions,
    Capability,
    ChatResponse,
    ChatStream,
    Layer,
    LayerContext,
    LayeredProvider,
    LayerSpec,
    Message,
    PluginRegistry,
    Position,
    create_provider,
    hookimpl,
)
from llmrelay.core.errors import CapabilityNotSupportedError, CircuitOpenError
from llmrelay.core.pipeline import Handler, Operation
from llmrelay.core.stream import StreamOutcome

from tests.support import fake_provider
from tests.support.fake_provider import FakeProvider
from tests.support.threads import run_in_threads

HI = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


class Recording(Layer):
    """Notes each call in a shared trace; optional behaviour before proceeding."""

    def __init__(self, name: str, trace: list[str], before: Callable[[Call], Any] | None = None) -> None:
        self.name = name
        self.trace = trace
        self.before = before
        self.downstream: list[Handler] = []
        self.closed = 0
        self.stream_outcomes: list[str | None] = []

    def handle(self, call: Call, proceed: Handler) -> Any:
        self.trace.append(f"{self.name}:{call.operation}")
        if self.before is not None:
            answer = self.before(call)
            if answer is not None:
                return answer
        result = proceed(call)
        if isinstance(result, ChatStream):
            result.add_done_callback(lambda s: self.stream_outcomes.append(s.outcome))
        return result

    def bind_downstream(self, proceed: Handler) -> None:
        self.downstream.append(proceed)

    def close(self) -> None:
        self.closed += 1


class LayerPlugin:
    """A plugin object contributing layers from specs, counting factory calls."""

    def __init__(self, specs: list[LayerSpec]) -> None:
        self.specs = specs

    @hookimpl
    def llmrelay_register_layers(self, register: Callable[[LayerSpec], None]) -> None:
        for spec in self.specs:
            register(spec)


class Built:
    """Collects the layers the specs' factories built."""

    def __init__(self) -> None:
        self.trace: list[str] = []
        self.layers: dict[str, Recording] = {}
        self.factory_calls = 0

    def spec(self, name: str, position: int, before: Callable[[Call], Any] | None = None, **kw: Any) -> LayerSpec:
        def factory(context: LayerContext) -> Layer:
            self.factory_calls += 1
            layer = Recording(name, self.trace, before)
            self.layers[name] = layer
            return layer

        return LayerSpec(name=name, position=position, factory=factory, **kw)


def make_provider(*specs: LayerSpec, **kwargs: Any) -> LayeredProvider:
    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(LayerPlugin(list(specs)), name="test-layers")
    provider = create_provider("fake", registry=registry, **kwargs)
    assert isinstance(provider, LayeredProvider)
    return provider


def fake(provider: LayeredProvider) -> FakeProvider:
    assert isinstance(provider.inner, FakeProvider)
    return provider.inner


def test_layers_run_in_position_order_whatever_the_registration_order() -> None:
    built = Built()
    provider = make_provider(
        built.spec("breaker", Position.BREAKER),
        built.spec("metrics", Position.METRICS),
        built.spec("zz-inner", Position.INNERMOST),
        built.spec("cache", Position.CACHE),
    )
    assert [layer.name for layer in provider.layers] == ["metrics", "cache", "breaker", "zz-inner"]

    response = provider.execute(HI)

    assert response.text == "hello: hi"
    assert built.trace == ["metrics:execute", "cache:execute", "breaker:execute", "zz-inner:execute"]
    assert fake(provider).count("execute") == 1
    assert (
        repr(provider)
        == "<LayeredProvider 'fake' [metrics, cache, breaker, zz-inner] -> <FakeProvider 'fake' base_url=''>>"
    )


def test_a_layer_can_answer_without_an_upstream_call() -> None:
    built = Built()
    cached = ChatResponse(message=Message.assistant("from cache"), finish_reason="stop")
    provider = make_provider(
        built.spec("metrics", Position.METRICS),
        built.spec("cache", Position.CACHE, before=lambda call: cached),
        built.spec("breaker", Position.BREAKER),
    )

    assert provider.execute(HI) is cached
    # Layers outside the cache saw the call; the ones inside and the provider did not.
    assert built.trace == ["metrics:execute", "cache:execute"]
    assert fake(provider).calls == []


def test_a_layer_raising_before_proceed_makes_no_upstream_call() -> None:
    def reject(call: Call) -> None:
        raise CircuitOpenError("breaker open", provider=call.provider, retry_after=5)

    built = Built()
    provider = make_provider(
        built.spec("metrics", Position.METRICS), built.spec("breaker", Position.BREAKER, before=reject)
    )

    with pytest.raises(CircuitOpenError) as info:
        provider.execute(HI)
    assert info.value.provider == "fake"
    assert fake(provider).calls == []
    with pytest.raises(CircuitOpenError):
        provider.stream_execute(HI)
    assert fake(provider).calls == []


def test_the_chain_is_built_once_per_provider_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []
    original = LayeredProvider._build_chain

    def counting(self: LayeredProvider) -> Handler:
        builds.append(1)
        return original(self)

    monkeypatch.setattr(LayeredProvider, "_build_chain", counting)
    built = Built()
    provider = make_provider(built.spec("metrics", Position.METRICS), built.spec("cache", Position.CACHE))

    for _ in range(5):
        provider.execute(HI)
        list(provider.stream_execute(HI))
    provider.list_models()

    assert len(builds) == 1
    assert built.factory_calls == 2
    assert [len(layer.downstream) for layer in built.layers.values()] == [1, 1]
    assert fake(provider).count("execute") == 5


def test_streams_pass_through_the_layers_and_layers_see_how_they_end() -> None:
    built = Built()
    provider = make_provider(built.spec("metrics", Position.METRICS), built.spec("cache", Position.CACHE))

    with provider.stream_execute(HI) as stream:
        assert isinstance(stream, ChatStream)
        text = "".join(chunk.text for chunk in stream)
    assert text == "hello hi"
    assert built.trace == ["metrics:stream_execute", "cache:stream_execute"]
    assert built.layers["metrics"].stream_outcomes == [StreamOutcome.COMPLETED]

    with provider.stream_execute(HI) as stream:
        next(stream)  # stop early
    assert built.layers["cache"].stream_outcomes == [StreamOutcome.COMPLETED, StreamOutcome.CANCELLED]


def test_every_operation_goes_through_the_layers() -> None:
    built = Built()
    provider = make_provider(built.spec("metrics", Position.METRICS))

    provider.execute(HI)
    provider.stream_execute(HI).close()
    assert provider.list_models().ids == ["fake/small", "fake/auto"]
    assert provider.validate_config().ok
    assert provider.get_credits().remaining == 7.5
    assert provider.get_generation_stats("gen-7").id == "gen-7"
    with pytest.raises(CapabilityNotSupportedError) as info:
        provider.embed({"input": "x"})
    assert info.value.provider == "fake"

    assert built.trace == [f"metrics:{op}" for op in Operation]
    assert [op for op, _ in fake(provider).calls] == list(Operation)[:-1]


def test_bind_downstream_lets_a_layer_call_through_the_layers_beneath_it() -> None:
    built = Built()
    provider = make_provider(
        built.spec("metrics", Position.METRICS),
        built.spec("cache", Position.CACHE),
        built.spec("breaker", Position.BREAKER),
    )
    cache = built.layers["cache"]
    assert len(cache.downstream) == 1

    # What a cache does when it refreshes an entry in the background.
    refreshed = cache.downstream[0](Call(Operation.LIST_MODELS, "fake"))

    assert refreshed.ids == ["fake/small", "fake/auto"]
    assert built.trace == ["breaker:list_models"]  # beneath the cache only
    assert fake(provider).count("list_models") == 1


def test_call_carries_model_options_and_default_model() -> None:
    seen: list[Call] = []
    built = Built()
    provider = make_provider(
        built.spec("spy", Position.METRICS, before=lambda call: seen.append(call)),
        default_model="fake/default",
    )
    options = CallOptions(cache=False, extra={"tenant": "t1"})
    provider.execute({"messages": [{"role": "user", "content": "hi"}]}, options=options)

    (call,) = seen
    assert call.provider == "fake"
    assert call.model == "fake/default"
    assert call.request.model == "fake/default"
    assert call.options is options
    assert fake(provider).calls[0][1].model == "fake/default"


def test_a_factory_returning_none_stays_out_of_the_chain() -> None:
    built = Built()
    skip = LayerSpec(name="only-for-others", position=150, factory=lambda context: None)
    provider = make_provider(built.spec("metrics", Position.METRICS), skip)
    assert [layer.name for layer in provider.layers] == ["metrics"]
    assert provider.layer("only-for-others") is None
    assert provider.layer("metrics") is built.layers["metrics"]


def test_the_layered_provider_has_the_inner_identity() -> None:
    provider = make_provider()
    assert provider.name == "fake"
    assert provider.instance_name == "fake"
    assert provider.capabilities == FakeProvider.capabilities
    assert provider.supports(Capability.CREDITS)
    assert not provider.supports(Capability.EMBEDDINGS)
    assert provider.settings is fake(provider).settings


def test_close_closes_every_layer_and_the_provider_even_when_one_fails() -> None:
    class Failing(Recording):
        def close(self) -> None:
            super().close()
            raise RuntimeError("layer close failed")

    trace: list[str] = []
    failing = Failing("metrics", trace)
    other = Recording("cache", trace)
    inner = FakeProvider()
    provider = LayeredProvider(inner, [failing, other])

    with pytest.raises(RuntimeError, match="layer close failed"):
        provider.close()
    assert failing.closed == 1 and other.closed == 1
    assert inner.closed


def test_using_the_provider_as_a_context_manager_closes_it() -> None:
    built = Built()
    with make_provider(built.spec("metrics", Position.METRICS)) as provider:
        provider.execute(HI)
    assert built.layers["metrics"].closed == 1
    assert fake(provider).closed


def test_a_failing_factory_closes_what_was_already_built() -> None:
    built = Built()

    def explode(context: LayerContext) -> Layer:
        raise RuntimeError("cannot build")

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(
        LayerPlugin([built.spec("metrics", Position.METRICS), LayerSpec(name="bad", position=500, factory=explode)]),
        name="layers",
    )
    with pytest.raises(RuntimeError, match="cannot build"):
        create_provider("fake", registry=registry)
    assert built.layers["metrics"].closed == 1


def test_plugins_false_gives_the_bare_provider_and_a_list_keeps_only_those_named() -> None:
    built = Built()
    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(
        LayerPlugin([built.spec("metrics", Position.METRICS), built.spec("cache", Position.CACHE)]), name="layers"
    )
    assert isinstance(create_provider("fake", registry=registry, plugins=False), FakeProvider)
    only = create_provider("fake", registry=registry, plugins=["cache"])
    assert [layer.name for layer in only.layers] == ["cache"]


def test_layers_are_shared_safely_by_threads() -> None:
    lock = threading.Lock()
    counts: dict[str, int] = {}

    def count(call: Call) -> None:
        with lock:
            counts[call.operation] = counts.get(call.operation, 0) + 1

    built = Built()
    provider = make_provider(built.spec("counter", Position.METRICS, before=count))
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            provider.execute(HI)

    run_in_threads(work, 8)
    assert counts == {"execute": 400}
    assert fake(provider).count("execute") == 400


def test_the_readme_layer_example_works() -> None:
    import types
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Writing a plugin\n", 1)[1]
    example = next(block.split("```", 1)[0] for block in section.split("```python\n")[1:] if "AuditLayer" in block)
    module = types.ModuleType("readme_audit_plugin")
    exec(compile(example, "README.md", "exec"), module.__dict__)

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(module, name="audit")
    seen: list[Call] = []
    spy = LayerSpec(name="spy", position=Position.INNERMOST, factory=lambda c: Recording("spy", [], seen.append))
    registry.register(LayerPlugin([spy]), name="spy")
    provider = create_provider("fake", registry=registry, config={"plugins": {"audit": {"tag": "seen"}}})
    assert [layer.name for layer in provider.layers] == ["audit", "spy"]
    provider.execute(HI)
    assert seen[0].notes == {"seen": "execute"}
