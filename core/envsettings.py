"""Settings read from environment variables: nested names, JSON for complex values, legacy aliases.

The names (``__``, two underscores, steps into a nested table, as in pydantic-settings)::

    {PREFIX}{FIELD}                      a provider's field          OPENROUTER_DEFAULT_MODEL=openai/gpt-4o-mini
    {PREFIX}{FIELD}__{FIELD}[__...]      a nested field              OPENROUTER_TIMEOUT__READ=30
    LLMRELAY_{PLUGIN}__{FIELD}[__...]    a plugin's field            LLMRELAY_CACHE__BACKEND=redis
    LLMRELAY_{PLUGIN}__ENABLED           a plugin on or off          LLMRELAY_BREAKER__ENABLED=false

``{PREFIX}`` is the provider class's ``env_prefix`` (``OPENROUTER_``); a
plugin's name is upper-cased, ``-`` read as ``_``. A table of tables (the
cache's ``operations``) takes its key as the next step:
``LLMRELAY_CACHE__OPERATIONS__EXECUTE__ENABLED=true``.

**Values** are text, validated by the same settings model as a config file's
(``30``, ``true``, ``https://...``). A field whose type is a list, a set, a
tuple or a table takes JSON (``OPENROUTER_RETRY__RETRY_STATUSES='[429, 503]'``,
``OPENROUTER_HEADERS='{"X-Team": "search"}'``), as pydantic-settings does.
``null`` sets an optional field that is not text to none. An empty variable
counts as unset.

**Which names are mistakes.** A variable with ``__`` under a provider's
prefix, or any variable under ``LLMRELAY_{PLUGIN}__``, is llmrelay's: one
that names no setting is a :class:`~llmrelay.core.errors.ConfigurationError`
with a "did you mean" (``OPENROUTER_TIMEOUT__RAED``). A name without ``__``
that is not a field is left alone, since other programs share the prefixes
(``OPENAI_LOG``, ``ANTHROPIC_MODEL``, ``LLMRELAY_CONFIG``,
``LLMRELAY_GATEWAY_KEY``); the one exception is a nested field spelled
with one underscore (``OPENROUTER_TIMEOUT_READ``), which is surely meant as
``OPENROUTER_TIMEOUT__READ`` and says so.

**Legacy aliases.** A settings model may list, in a class attribute
``env_aliases``, variables of other names (and units) that set its fields:
``EnvAlias("OPENROUTER_REQUEST_TIMEOUT", ("timeout.read",), milliseconds)``.
Core knows no plugin's or provider's names: each model declares its own.
A variable of the new form wins over an alias of the same field.

**Why not pydantic-settings.** Its sources read into ``BaseSettings``
classes, while llmrelay's settings models (and third parties') are plain
models validated once from three merged sources (keyword arguments, the
config, the environment). Beyond the names and JSON this module does what
it does not: it tells which variable set each value (for error messages and
``llmrelay config``), reports a misspelt nested name instead of ignoring
it, and converts the legacy variables' units. It is also one scan of the
environment, with no import on the path that builds a provider.
"""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from .errors import ConfigurationError

__all__ = [
    "DELIMITER",
    "PLUGIN_ENV_PREFIX",
    "EnvAlias",
    "EnvReading",
    "milliseconds",
    "plugin_env_name",
    "plugin_env_prefix",
    "read_environment",
    "retries_to_attempts",
    "switch",
]

DELIMITER = "__"
PLUGIN_ENV_PREFIX = "LLMRELAY_"

_COLLECTIONS = (list, set, frozenset, tuple, dict)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "SALT")
# What _resolve gives for a switch (a plugin's ENABLED): read by switch(), not left to a model.
_SWITCH = object()


# --------------------------------------------------------------------------- legacy aliases


# NamedTuples and a plain class, not dataclasses: these load with every
# provider build, and making a frozen dataclass costs about 1 ms of it.


class EnvAlias(NamedTuple):
    """A variable of another name that sets one or more fields, its text converted first.

    ``targets`` are dotted paths in the model (``"timeout.read"``);
    ``convert`` turns the text into the value (None: the text as it is, for
    the model to validate) and raises ``ValueError`` saying what it expected;
    ``unit`` is named in messages and in ``llmrelay config``.
    """

    variable: str
    targets: tuple[str, ...]
    convert: Callable[[str], Any] | None = None
    unit: str = ""

    @property
    def label(self) -> str:
        return f"{self.variable}, in {self.unit}" if self.unit else self.variable


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of {what}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number of {what}")
    return value


def milliseconds(text: str) -> float:
    """Milliseconds (``"30000"``) as the seconds llmrelay's settings take (``30.0``)."""
    return _number(text, "milliseconds") / 1000


def retries_to_attempts(text: str) -> int:
    """Retries after the first attempt (``"3"``) as attempts in all (``4``)."""
    try:
        retries = int(text)
    except ValueError:
        raise ValueError("expected a whole number of retries (0 or more)") from None
    if retries < 0:
        raise ValueError("expected a whole number of retries (0 or more)")
    return retries + 1


def switch(text: str) -> bool:
    """``true`` / ``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected true or false (or 1/0, yes/no, on/off)")


# --------------------------------------------------------------------------- reading


class EnvReading:
    """What the environment sets for one provider or plugin.

    ``data`` is shaped like a config section (nested tables as dicts);
    ``origins`` maps each path set (a tuple of keys) to the variable that set
    it, with its unit for an alias (``"OPENROUTER_REQUEST_TIMEOUT, in milliseconds"``).
    """

    __slots__ = ("data", "origins")

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: dict[tuple[str, ...], str] = {}

    def set(self, path: tuple[str, ...], value: Any, origin: str) -> None:
        node = self.data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
        self.origins[path] = origin

    def covers(self, path: tuple[str, ...]) -> bool:
        """Whether a variable already set this path (itself, or a whole value above it)."""
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict):
                return True
            if part not in node:
                return False
            node = node[part]
        return True


def plugin_env_name(plugin: str) -> str:
    """``CACHE`` for the plugin named ``cache`` (``-`` read as ``_``)."""
    return plugin.upper().replace("-", "_")


def plugin_env_prefix(plugin: str) -> str:
    """``LLMRELAY_CACHE__`` for the plugin named ``cache``."""
    return f"{PLUGIN_ENV_PREFIX}{plugin_env_name(plugin)}{DELIMITER}"


def read_environment(
    model: type[BaseModel] | None,
    prefix: str,
    environ: Mapping[str, str],
    *,
    scope: str,
    switches: Iterable[str] = (),
    aliases: Iterable[EnvAlias] = (),
) -> EnvReading:
    """The settings ``environ`` sets for ``model`` under ``prefix``, then through ``aliases``.

    A ``prefix`` ending in ``__`` (a plugin's) owns every name under it;
    a provider's owns its fields and every name with ``__``. ``switches``
    are true/false names read besides the model's fields (a plugin's
    ``enabled``). ``scope`` (``providers.openrouter``) starts the paths in
    messages. A model of None (a plugin without a settings model) takes any
    name, its values as text.
    """
    reading = EnvReading()
    owns_all = prefix.endswith(DELIMITER)
    switch_names = frozenset(switches)
    aliases = tuple(aliases)
    legacy = {alias.variable for alias in aliases}
    found: list[tuple[tuple[str, ...], Any, str]] = []
    for variable, text in environ.items():
        if not text or not variable.startswith(prefix) or variable == prefix:
            continue
        segments = variable[len(prefix) :].split(DELIMITER)
        if not owns_all and len(segments) == 1 and not _is_field(model, segments[0], switch_names):
            if variable not in legacy:  # OPENROUTER_REQUEST_TIMEOUT is read below, as an alias
                _refuse_single_underscore(model, prefix, segments[0], variable, scope)
            continue
        path, annotation = _resolve(model, segments, switch_names, variable, prefix, scope)
        found.append((path, _parse(text, annotation, path, variable, scope), variable))
    # A whole table first, then the names inside it: OPENROUTER_TIMEOUT__READ
    # refines OPENROUTER_TIMEOUT='{"connect": 5}' rather than being replaced by it.
    for path, value, variable in sorted(found, key=lambda item: (len(item[0]), item[0])):
        reading.set(path, value, variable)
    for alias in aliases:
        _apply_alias(reading, alias, model, environ, switch_names, scope)
    return reading


def _apply_alias(
    reading: EnvReading,
    alias: EnvAlias,
    model: type[BaseModel] | None,
    environ: Mapping[str, str],
    switch_names: frozenset[str],
    scope: str,
) -> None:
    text = environ.get(alias.variable)
    if not text:
        return
    converted: Any = None
    if alias.convert is not None:
        try:
            converted = alias.convert(text)
        except ValueError as exc:
            shown = _shown(text, alias.variable)
            raise ConfigurationError(f"environment variable {alias.variable}: {exc} (got {shown})") from None
    for target in alias.targets:
        path, annotation = _resolve(model, target.upper().split("."), switch_names, alias.variable, "", scope)
        if reading.covers(path):  # a variable of the new form set it: that one wins
            continue
        value = converted if alias.convert is not None else _parse(text, annotation, path, alias.variable, scope)
        reading.set(path, value, alias.label)


# --------------------------------------------------------------------------- names


def _is_field(model: type[BaseModel] | None, segment: str, switch_names: frozenset[str]) -> bool:
    name = segment.lower()
    return model is None or name in model.model_fields or name in switch_names


def _refuse_single_underscore(model: type[BaseModel] | None, prefix: str, rest: str, variable: str, scope: str) -> None:
    """``OPENROUTER_TIMEOUT_READ``: a nested field written with one underscore is a mistake worth naming."""
    if model is None:
        return
    for name, info in model.model_fields.items():
        nested = _model_of(info.annotation)
        head = name.upper() + "_"
        if nested is not None and rest.startswith(head) and rest[len(head) :].lower() in nested.model_fields:
            meant = f"{prefix}{name.upper()}{DELIMITER}{rest[len(head) :]}"
            raise ConfigurationError(
                f"environment variable {variable}: {scope}.{name} is a table; "
                f"its fields are named with two underscores: did you mean {meant}?"
            )


def _resolve(
    model: type[BaseModel] | None,
    segments: list[str],
    switch_names: frozenset[str],
    variable: str,
    prefix: str,
    scope: str,
) -> tuple[tuple[str, ...], Any]:
    """The path a variable's name points to and the annotation found there; a wrong name is an error."""
    path: list[str] = []
    annotation: Any = model
    for index, segment in enumerate(segments):
        part = segment.lower()
        where = ".".join([scope, *path])
        if not part:
            raise ConfigurationError(
                f"environment variable {variable}: an empty name between underscores (steps are separated by __)"
            )
        if index == 0 and part in switch_names:
            if len(segments) > 1:
                raise ConfigurationError(f"environment variable {variable}: {scope}.{part} is one value, true or false")
            return (part,), _SWITCH
        if model is None:
            annotation = str
        elif (nested := _model_of(annotation)) is not None:
            if part not in nested.model_fields:
                raise ConfigurationError(_unknown(variable, prefix, segments, index, nested, where, switch_names))
            annotation = nested.model_fields[part].annotation
        elif _model_of(_dict_value(annotation)) is not None:
            annotation = _dict_value(annotation)  # a table of tables: this step is a key
        else:
            joined = DELIMITER.join(segments[:index])
            raise ConfigurationError(
                f"environment variable {variable}: {where} is one value, not a table of settings; "
                f"set {prefix}{joined} itself" + (" (as JSON)" if _is_complex(annotation) else "")
            )
        path.append(part)
    return tuple(path), annotation


def _unknown(
    variable: str,
    prefix: str,
    segments: list[str],
    index: int,
    model: type[BaseModel],
    where: str,
    switch_names: frozenset[str],
) -> str:
    names = sorted(model.model_fields) + (sorted(switch_names) if index == 0 else [])
    close = difflib.get_close_matches(segments[index].lower(), names, n=1)
    hint = ""
    if close:
        meant = DELIMITER.join([*segments[:index], close[0].upper(), *segments[index + 1 :]])
        hint = f" (did you mean {prefix}{meant}?)" if prefix else f" (did you mean {close[0]!r}?)"
    return (
        f"environment variable {variable}: {where}.{segments[index].lower()}: unknown setting{hint}; "
        f"the settings there are {', '.join(names)}"
    )


# --------------------------------------------------------------------------- values


def _parse(text: str, annotation: Any, path: tuple[str, ...], variable: str, scope: str) -> Any:
    if annotation is _SWITCH:
        try:
            return switch(text)
        except ValueError as exc:
            raise ConfigurationError(f"environment variable {variable}: {exc} (got {_shown(text, variable)})") from None
    if _is_complex(annotation):
        if text.strip() == "null" and _is_optional(annotation):
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            # The text is not echoed: a table of headers may hold a token.
            table = _dict_value(annotation) is not None or _model_of(annotation) is not None
            example = '{"name": "value"}' if table else "[1, 2]"
            raise ConfigurationError(
                f"environment variable {variable}: {'.'.join((scope, *path))} takes JSON (like {example}), "
                f"and this value is not valid JSON ({exc.msg}, character {exc.pos})"
            ) from None
    if text.strip() == "null" and _is_optional(annotation) and not _is_text(annotation):
        return None
    return text


def _arms(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for arm in _arms(annotation):
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            return arm
    return None


def _dict_value(annotation: Any) -> Any:
    for arm in _arms(annotation):
        if get_origin(arm) is dict and len(get_args(arm)) == 2:
            return get_args(arm)[1]
    return None


def _is_complex(annotation: Any) -> bool:
    return any(
        arm in _COLLECTIONS or get_origin(arm) in _COLLECTIONS or (isinstance(arm, type) and issubclass(arm, BaseModel))
        for arm in _arms(annotation)
    )


def _is_optional(annotation: Any) -> bool:
    return type(None) in _arms(annotation)


def _is_text(annotation: Any) -> bool:
    return any(arm in (str, SecretStr) for arm in _arms(annotation))


def _shown(text: str, variable: str) -> str:
    """A variable's text for a message: never a secret's, never a long one."""
    if any(word in variable.upper() for word in _SECRET_WORDS) or len(text) > 40:
        return f"a value of {len(text)} characters"
    return repr(text)
