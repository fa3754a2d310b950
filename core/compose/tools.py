"""Python functions as tools an LLM can call, executed in parallel.

::

    tools = ToolRegistry()

    @tools.tool(cache_ttl=300, timeout=10, breaker_threshold=3)
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
        \"\"\"Current weather in a city.\"\"\"
        ...

    request = {"model": ..., "messages": [...], "tools": tools.definitions()}
    reply = provider.execute(request)
    messages += [reply.message, *tools.execute(reply.tool_calls)]

The JSON schema of a tool comes from its type hints (through pydantic, so
``Literal``, ``Optional``, lists, nested models and ``Annotated[str,
"description"]`` all work) unless one is given. Arguments are validated
against it before the function runs.

:meth:`ToolRegistry.execute` runs one model turn's tool calls on a thread
pool: identical calls (same tool, same arguments once parsed) run once and
share the result, also with an identical call another thread has in flight;
results come back as ``Message.tool(...)`` in the order of the calls. A
tool that raises, times out, is unknown, gets bad arguments or has its
breaker open produces an error result the model can read
(``{"error": {"type": ..., "message": ...}}``), never an exception, so one
bad tool does not end the agent's turn.

Per tool: ``cache_ttl`` caches successful results by arguments;
``timeout`` bounds the wait (a Python thread cannot be killed: a timed-out
function keeps its worker until it returns, so give slow tools a pool big
enough); ``breaker_threshold`` consecutive failures (exceptions or
timeouts) stop calls to the tool for ``breaker_cooldown`` seconds, after
which one probe call decides whether it is closed again.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Annotated, Any

from cachetools import TTLCache
from pydantic import BaseModel, Field, ValidationError, create_model

from ..errors import ConfigurationError
from ..models import FunctionCall, FunctionDefinition, Message, Tool, ToolCall
from ..secrets import redact

__all__ = ["ToolOptions", "ToolRegistry", "ToolResult", "ToolSpec", "schema_from_function"]

log = logging.getLogger("llmrelay.tools")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """Per-tool behaviour. Seconds throughout; ``None`` / ``0`` turn a feature off."""

    cache_ttl: float | None = None
    timeout: float | None = None  # None: the registry's default_timeout
    breaker_threshold: int = 0
    breaker_cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.cache_ttl is not None and self.cache_ttl <= 0:
            raise ConfigurationError(f"cache_ttl must be > 0 seconds (or None for no caching), got {self.cache_ttl}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.breaker_threshold < 0 or self.breaker_cooldown <= 0:
            raise ConfigurationError("breaker_threshold must be >= 0 (0 = off) and breaker_cooldown > 0 seconds")


# --------------------------------------------------------------------------- schemas


def _strip_titles(node: Any) -> Any:
    # pydantic adds a "title" to every schema node; models only need the
    # structure. A property *named* "title" has a dict value and is kept.
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _arguments_model(func: Callable[..., Any], name: str) -> type[BaseModel]:
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        # Annotated[str, "what it is"]: a plain string is the parameter's description.
        # pydantic ignores metadata it does not know (the string); an Annotated
        # nested in another is flattened, so this appends the Field after the rest.
        if typing.get_origin(annotation) is Annotated:
            text = next((e for e in typing.get_args(annotation)[1:] if isinstance(e, str)), None)
            if text is not None:
                annotation = Annotated[annotation, Field(description=text)]
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{name}_arguments", **fields)


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = _strip_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    return schema


def schema_from_function(func: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """The JSON schema of a function's parameters, from its type hints."""
    return _schema_of(_arguments_model(func, name or func.__name__))


def _first_paragraph(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    return doc.split("\n\n", 1)[0].strip() if doc else None


@dataclass(slots=True)
class ToolSpec:
    """One registered tool."""

    name: str
    description: str | None
    parameters: dict[str, Any]
    function: Callable[..., Any]
    options: ToolOptions
    arguments_model: type[BaseModel] | None = None  # None when the schema was given by hand

    def definition(self) -> Tool:
        return Tool(
            function=FunctionDefinition(name=self.name, description=self.description, parameters=self.parameters)
        )


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class ToolResult:
    """The outcome of one tool call, ready to send back as a tool message."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    error_type: str | None = None
    cached: bool = False
    deduplicated: bool = False  # this call shared the result of an identical one
    duration: float = 0.0
    # What the tool raised, for the application's own logs (the model sees only content).
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def message(self) -> Message:
        return Message.tool(self.content, tool_call_id=self.call_id, name=self.name)


@dataclass(slots=True)
class _Outcome:
    content: str
    is_error: bool = False
    error_type: str | None = None
    cached: bool = False
    duration: float = 0.0
    exception: BaseException | None = None


def _error(kind: str, message: str) -> _Outcome:
    return _Outcome(json.dumps({"error": {"type": kind, "message": message}}, ensure_ascii=False), True, kind)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------- breaker


@dataclass(slots=True)
class _Breaker:
    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float | None = None
    probing: bool = False

    def admit(self, now: float) -> float | None:
        """``None`` to let the call run, else the seconds until the tool may be tried again."""
        if self.open_until is None:
            return None
        if now < self.open_until:
            return self.open_until - now
        if self.probing:  # half-open: one probe at a time
            return 0.0
        self.probing = True
        return None

    def record(self, ok: bool, now: float) -> None:
        self.probing = False
        if ok:
            self.failures, self.open_until = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown


# --------------------------------------------------------------------------- registry


@dataclass(slots=True)
class _State:
    """Per-tool mutable state, guarded by the registry's lock."""

    cache: TTLCache[str, str] | None
    breaker: _Breaker | None
    calls: int = 0
    failures: int = 0
    cache_hits: int = 0
    joined: int = 0  # calls that shared an identical call already running in another thread
    inflight: dict[str, tuple[Future[_Outcome], _Run]] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    """One running call; whoever gives up on it first counts it as failed, once."""

    name: str
    timeout: float
    settled: bool = False


class ToolRegistry:
    """Tools by name, and the thread pool their calls run on. Thread-safe."""

    def __init__(
        self,
        *,
        max_workers: int = 16,
        default_timeout: float = 60.0,
        cache_size: int = 1024,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_workers < 1 or default_timeout <= 0:
            raise ConfigurationError("ToolRegistry: max_workers must be >= 1 and default_timeout > 0 seconds")
        self.max_workers = max_workers
        self.default_timeout = default_timeout
        self._cache_size = cache_size
        self._clock = clock
        self._tools: dict[str, ToolSpec] = {}
        self._state: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ registering

    def register(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        breaker_threshold: int = 0,
        breaker_cooldown: float = 30.0,
    ) -> ToolSpec:
        """Add a tool. Its schema comes from the type hints unless ``parameters`` is given."""
        tool_name = name or getattr(function, "__name__", None)
        if not tool_name or not tool_name.replace("_", "").replace("-", "").isalnum() or len(tool_name) > 64:
            raise ConfigurationError(
                f"tool name {tool_name!r} is not valid: use 1-64 letters, digits, '_' or '-' (pass name=...)"
            )
        options = ToolOptions(cache_ttl, timeout, breaker_threshold, breaker_cooldown)
        model: type[BaseModel] | None = None
        if parameters is None:
            try:
                model = _arguments_model(function, tool_name)
            except Exception as exc:  # an annotation pydantic cannot turn into a schema
                raise ConfigurationError(
                    f"tool {tool_name!r}: cannot derive a JSON schema from its type hints ({exc}); "
                    "pass parameters={...} explicitly"
                ) from exc
            schema = _schema_of(model)
        else:
            if not isinstance(parameters, dict) or parameters.get("type") != "object":
                raise ConfigurationError(f"tool {tool_name!r}: parameters must be a JSON schema with type 'object'")
            schema = parameters
        spec = ToolSpec(tool_name, description or _first_paragraph(function), schema, function, options, model)
        state = _State(
            cache=TTLCache(self._cache_size, options.cache_ttl, timer=self._clock) if options.cache_ttl else None,
            breaker=_Breaker(options.breaker_threshold, options.breaker_cooldown)
            if options.breaker_threshold
            else None,
        )
        with self._lock:
            if tool_name in self._tools:
                raise ConfigurationError(f"a tool named {tool_name!r} is already registered")
            self._tools[tool_name] = spec
            self._state[tool_name] = state
        return spec

    def tool(self, function: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """Decorator form of :meth:`register`: ``@tools.tool`` or ``@tools.tool(cache_ttl=60)``."""
        if function is not None:
            self.register(function, **kwargs)
            return function

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.register(func, **kwargs)
            return func

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def definitions(self, names: Iterable[str] | None = None) -> list[Tool]:
        """The tools in the form a ChatRequest's ``tools`` takes."""
        chosen = self._tools.values() if names is None else [self._tools[n] for n in names]
        return [spec.definition() for spec in chosen]

    def stats(self, name: str) -> dict[str, int]:
        with self._lock:
            state = self._state[name]
            return {
                "calls": state.calls,
                "failures": state.failures,
                "cache_hits": state.cache_hits,
                "joined": state.joined,
            }

    # ------------------------------------------------------------------ executing

    def execute(self, tool_calls: Iterable[ToolCall]) -> list[Message]:
        """Run one model turn's tool calls in parallel; tool messages in the order of the calls."""
        return [result.message for result in self.execute_results(tool_calls)]

    def execute_results(self, tool_calls: Iterable[ToolCall]) -> list[ToolResult]:
        """Like :meth:`execute`, with details (errors, cache hits, deduplication, durations)."""
        calls = list(tool_calls)
        started = time.monotonic()
        pending: dict[str, tuple[Future[_Outcome], _Run] | _Outcome] = {}
        keys: list[str] = []
        for call in calls:
            key = self._key(call)
            keys.append(key)
            if key not in pending:
                pending[key] = self._start(call, key)
        outcomes: dict[str, _Outcome] = {}
        for key, entry in pending.items():
            if isinstance(entry, _Outcome):
                outcomes[key] = entry
                continue
            future, run = entry
            remaining = max(0.0, started + run.timeout - time.monotonic())
            try:
                outcomes[key] = future.result(timeout=remaining)
            except FutureTimeout:
                self._settle(run, ok=False)
                outcomes[key] = _error("timeout", f"tool {run.name!r} did not finish within {run.timeout:g} seconds")
        results = []
        seen: set[str] = set()
        for call, key in zip(calls, keys, strict=True):
            outcome = outcomes[key]
            results.append(
                ToolResult(
                    call.id,
                    call.function.name,
                    outcome.content,
                    outcome.is_error,
                    outcome.error_type,
                    outcome.cached,
                    key in seen,
                    outcome.duration,
                    outcome.exception,
                )
            )
            seen.add(key)
        return results

    def run(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> ToolResult:
        """Run one tool by name (outside a model turn)."""
        raw = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}))
        return self.execute_results([ToolCall(id="call", function=FunctionCall(name=name, arguments=raw))])[0]

    @staticmethod
    def _key(call: ToolCall) -> str:
        # Identical calls have the same tool and the same arguments once parsed
        # ({"a":1,"b":2} and {"b": 2, "a": 1} are one call).
        raw = call.function.arguments or "{}"
        try:
            canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
        except (ValueError, RecursionError):  # _parse turns these into the call's error result
            canonical = raw
        return f"{call.function.name}\x00{canonical}"

    def _start(self, call: ToolCall, key: str) -> tuple[Future[_Outcome], _Run] | _Outcome:
        """An immediate outcome (error, cache hit) or the future of the running call."""
        name = call.function.name
        spec = self._tools.get(name)
        if spec is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return _error("unknown_tool", f"there is no tool named {name!r}; available tools: {known}")
        try:
            arguments = self._parse(spec, call.function.arguments)
        except ValueError as exc:
            return _error("invalid_arguments", str(exc))
        timeout = spec.options.timeout or self.default_timeout
        with self._lock:
            state = self._state[name]
            if state.cache is not None:
                hit = state.cache.get(key)
                if hit is not None:
                    state.cache_hits += 1
                    return _Outcome(hit, cached=True)
            running = state.inflight.get(key)
            if running is not None:
                state.joined += 1
                return running
            if state.breaker is not None:
                wait = state.breaker.admit(self._clock())
                if wait is not None:
                    return _error(
                        "unavailable",
                        f"tool {name!r} is disabled after repeated failures; try again in {wait:.0f} seconds",
                    )
            state.calls += 1
            run = _Run(name, timeout)
            future = self._executor().submit(self._invoke, spec, arguments, key, run)
            state.inflight[key] = (future, run)
        future.add_done_callback(lambda _f: self._forget(name, key, _f))
        return future, run

    @staticmethod
    def _parse(spec: ToolSpec, raw: str) -> dict[str, Any]:
        try:
            arguments = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"arguments for {spec.name!r} are not valid JSON ({exc.msg} at position {exc.pos})"
            ) from None
        except (ValueError, RecursionError) as exc:  # an integer too long for int(), nesting too deep
            raise ValueError(f"arguments for {spec.name!r} cannot be decoded ({exc})") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments for {spec.name!r} must be a JSON object, got {type(arguments).__name__}")
        if spec.arguments_model is not None:
            try:
                validated = spec.arguments_model.model_validate(arguments)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
                )
                raise ValueError(f"invalid arguments for {spec.name!r}: {problems}") from None
            return {name: getattr(validated, name) for name in spec.arguments_model.model_fields}
        try:
            inspect.signature(spec.function).bind(**arguments)
        except TypeError as exc:
            raise ValueError(f"invalid arguments for {spec.name!r}: {exc}") from None
        return arguments

    def _invoke(self, spec: ToolSpec, arguments: dict[str, Any], key: str, run: _Run) -> _Outcome:
        began = time.perf_counter()
        try:
            value = spec.function(**arguments)
            content = _render(value)
        except Exception as exc:
            # No traceback in the log: tool code may put anything in it. The
            # exception itself is on ToolResult.exception for the application.
            message = redact(f"{type(exc).__name__}: {exc}")
            log.warning("tool %r failed: %s", spec.name, message)
            self._settle(run, ok=False)
            outcome = _error("tool_error", message)
            outcome.duration = time.perf_counter() - began
            outcome.exception = exc
            return outcome
        with self._lock:
            state = self._state[spec.name]
            if state.cache is not None:
                state.cache[key] = content
        self._settle(run, ok=True)
        return _Outcome(content, duration=time.perf_counter() - began)

    def _settle(self, run: _Run, *, ok: bool) -> None:
        with self._lock:
            if run.settled:  # already counted as a timeout
                return
            run.settled = True
            state = self._state[run.name]
            if not ok:
                state.failures += 1
            if state.breaker is not None:
                state.breaker.record(ok, self._clock())

    def _forget(self, name: str, key: str, future: Future[_Outcome]) -> None:
        with self._lock:
            inflight = self._state[name].inflight
            entry = inflight.get(key)
            if entry is not None and entry[0] is future:
                del inflight[key]

    def _executor(self) -> ThreadPoolExecutor:
        # Called under self._lock.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="llmrelay-tool")
        return self._pool

    def close(self) -> None:
        """Stop the thread pool (running tools finish; nothing new starts)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ToolRegistry:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ToolRegistry tools={sorted(self._tools)}>"
