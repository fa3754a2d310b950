"""The ``llmrelay`` command line.

::

    llmrelay [--config PATH] [--provider NAME] [--cassette PATH | --record PATH] [-v] COMMAND ...

    llmrelay providers                     installed providers, layers, plugins, and failed plugins with why
    llmrelay models [FILTER] [--json]      models with prices per million tokens
    llmrelay chat [PROMPT] [--model M] [--system S] [--stream] [--json]   (PROMPT or stdin)
    llmrelay validate [--json]             check config and key; exit 0 only when valid

``--cassette PATH`` replays recorded traffic and nothing else (a request the
cassette lacks is an error naming it); with no API key set, replay uses a
placeholder key, and says so. ``--record PATH`` records the command's
traffic to a cassette (created, or added to) with keys, cookies and
key-shaped values filtered.

Mistakes print one line, ``llmrelay: error: ...``, and exit with 2 (usage,
config, unknown provider) or 1 (the service failed, a request missing from
the cassette); Ctrl-C exits 130. ``-v`` logs at DEBUG, with keys redacted.

Plugins add commands through the ``llmrelay_register_commands`` hook:
``register(name, help, add_arguments, run)``; ``run(args, context)`` gets a
:class:`CommandContext` and returns the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import CapabilityNotSupportedError, ConfigurationError, LLMRelayError, PluginLoadError
from ..secrets import redact

if TYPE_CHECKING:
    from ..config import RelayConfig
    from ..plugins import PluginRegistry
    from ..provider import CallOptions, Provider

__all__ = [
    "DEFAULT_PROVIDER",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "REPLAY_PLACEHOLDER_KEY",
    "CommandContext",
    "UsageError",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # the service failed, or a request was not in the cassette
EXIT_USAGE = 2  # bad arguments, bad config, unknown provider, missing key or file
EXIT_INTERRUPTED = 130

DEFAULT_PROVIDER = "openrouter"
# Sent instead of a key when replaying with none configured. Replay never
# reaches the network, and the Authorization header is not part of matching.
REPLAY_PLACEHOLDER_KEY = "llmrelay-replay-placeholder"

log = logging.getLogger("llmrelay.cli")

Run = Callable[[argparse.Namespace, "CommandContext"], int]


class UsageError(Exception):
    """A mistake in the command line itself (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage and exits from inside parse_args; we
    # want one line and the exit code decided in one place.
    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib
        import re

        hint = ""
        # Python 3.12+ may drop the quotes around the choices: accept both.
        wrong = re.search(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
        if wrong:
            choices = re.findall(r"'([^']*)'", wrong.group(2)) or [c.strip() for c in wrong.group(2).split(",")]
            close = difflib.get_close_matches(wrong.group(1), choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"{message}{hint} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------- logging with keys redacted


class _RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: set[str]) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def _secrets_from_env() -> set[str]:
    names = ("API_KEY", "_KEY", "_TOKEN", "_SECRET")
    return {v for k, v in os.environ.items() if k.upper().endswith(names) and len(v) >= 8}


# --------------------------------------------------------------------------- the context commands get


class CommandContext:
    """What a command's ``run(args, context)`` receives.

    :meth:`provider` builds a provider the way the global options say
    (``--config``, ``--provider``, and under ``--cassette`` a placeholder key
    when none is set); the cassette itself is active for the whole command.
    Providers built here are closed when the command returns. Write output
    to :attr:`stdout` and notes to :attr:`stderr`.
    """

    def __init__(self, args: argparse.Namespace, registry: PluginRegistry, secrets: set[str]) -> None:
        self.args = args
        self.registry = registry
        self.secrets = secrets
        self.config_path: str | None = args.config
        self.provider_option: str | None = args.provider
        self.cassette: str | None = args.cassette
        self.record: str | None = args.record
        self.verbose: bool = args.verbose
        self.stdout: TextIO = sys.stdout
        self.stderr: TextIO = sys.stderr
        self._config: RelayConfig | None = None
        self._built: list[Provider] = []

    @property
    def replaying(self) -> bool:
        return self.cassette is not None

    @property
    def config(self) -> RelayConfig:
        """The config from ``--config``, else ``$LLMRELAY_CONFIG``, else built-in defaults."""
        if self._config is None:
            from ..config import CONFIG_ENV, RelayConfig, load_config

            path = self.config_path or os.environ.get(CONFIG_ENV)
            self._config = load_config(path) if path else RelayConfig(source="defaults")
            self._one_shot(self._config)
        return self._config

    def _one_shot(self, config: RelayConfig) -> None:
        # A CLI process runs one command and exits: a layer's warm-up (the
        # cache loads list_models on a background thread at start) would only
        # add a request racing the command's own, and under --cassette or
        # --record one the cassette does not hold or should not. A config
        # that sets warm_up explicitly keeps it.
        for spec in self.registry.layer_specs():
            model = spec.settings_model
            if model is not None and "warm_up" in model.model_fields:
                section = config.plugins.setdefault(spec.name, {})
                section.setdefault("warm_up", [])

    def provider_name(self) -> str:
        """``--provider``, else the config's ``default_provider``, else ``openrouter``."""
        chosen = self.provider_option or self.config.default_provider
        if chosen:
            return chosen
        installed = self.registry.providers()
        if DEFAULT_PROVIDER in installed:
            return DEFAULT_PROVIDER
        raise ConfigurationError(
            "no provider chosen: pass --provider NAME or set default_provider in the config "
            f"(installed: {', '.join(sorted(installed)) or 'none'})"
        )

    def provider(self, name: str | None = None, **settings: Any) -> Provider:
        """Build the named (or chosen) provider with the installed plugins' layers."""
        from ..config import create_provider

        instance = name or self.provider_name()
        section = self.config.provider_section(instance)
        type_name = section.get("type", instance)
        cls = self.registry.provider_class(type_name if isinstance(type_name, str) else instance)
        if self.replaying and cls.requires_api_key and not self._key_configured(cls, section, settings):
            settings["api_key"] = REPLAY_PLACEHOLDER_KEY
            self.stderr.write(f"llmrelay: note: no API key set; replaying {self.cassette} with a placeholder key\n")
        provider = create_provider(instance, config=self.config, registry=self.registry, **settings)
        key = provider.settings.key() if hasattr(provider.settings, "key") else None
        if key:
            self.secrets.add(key)
        self._built.append(provider)
        return provider

    def call_options(self) -> CallOptions | None:
        """Options for the command's provider calls.

        Under ``--cassette`` or ``--record`` the cache is bypassed
        (``CallOptions(cache=False)``): the command must replay or record
        the service's traffic, not an answer cached earlier (a Redis cache
        outlives the process).
        """
        from ..provider import CallOptions

        return CallOptions(cache=False) if (self.cassette or self.record) else None

    @staticmethod
    def _key_configured(cls: Any, section: dict[str, Any], settings: dict[str, Any]) -> bool:
        if settings.get("api_key") or section.get("api_key"):
            return True
        return bool(cls.env_prefix and os.environ.get(f"{cls.env_prefix}API_KEY"))

    def close(self) -> None:
        built, self._built = self._built, []
        for provider in built:
            try:
                provider.close()
            except Exception as exc:  # closing must not hide the command's own result
                log.debug("closing %r failed: %s", provider, exc)


# --------------------------------------------------------------------------- the parser


def _build_parser(registry: PluginRegistry) -> _Parser:
    from .commands import cmd_chat, cmd_models, cmd_providers, cmd_validate

    parser = _Parser(prog="llmrelay", description="One typed interface to many LLM services.")
    parser.add_argument("--config", metavar="PATH", help="TOML config file (default: $LLMRELAY_CONFIG)")
    parser.add_argument("--provider", metavar="NAME", help="provider to use (default: the config's, else openrouter)")
    traffic = parser.add_mutually_exclusive_group()
    traffic.add_argument("--cassette", metavar="PATH", help="replay recorded traffic only; no network")
    traffic.add_argument(
        "--record", metavar="PATH", help="record this command's traffic to a cassette, secrets filtered"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level (keys are redacted)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    sub = commands.add_parser("providers", help="installed providers, layers and plugins, and failed plugins")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(run=cmd_providers)

    sub = commands.add_parser("models", help="list models with prices per million tokens")
    sub.add_argument("filter", nargs="?", help="show models whose id or name contains this")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(run=cmd_models)

    sub = commands.add_parser("chat", help="send one prompt (argument or stdin) and print the answer")
    sub.add_argument("prompt", nargs="?", help="the prompt; '-' or nothing reads stdin")
    sub.add_argument("-m", "--model", help="model id (default: the provider's default_model)")
    sub.add_argument("-s", "--system", help="system prompt")
    sub.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    sub.add_argument(
        "--json", action="store_true", help="print the response as JSON (one line per chunk with --stream)"
    )
    sub.add_argument("--max-tokens", type=int, help="cap on the answer's length")
    sub.add_argument("--temperature", type=float, help="sampling temperature")
    sub.set_defaults(run=cmd_chat)

    sub = commands.add_parser("validate", help="check the config and the key; exit 0 only when valid")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(run=cmd_validate)

    _add_plugin_commands(commands, registry)
    return parser


def _add_plugin_commands(commands: Any, registry: PluginRegistry) -> None:
    taken = set(commands.choices)
    for impl in registry.pm.hook.llmrelay_register_commands.get_hookimpls():
        plugin = impl.plugin_name

        def register(
            name: str,
            help: str,
            add_arguments: Callable[[argparse.ArgumentParser], None] | None,
            run: Run,
            _plugin: str = plugin,
        ) -> None:
            if not isinstance(name, str) or not name or name in taken:
                log.warning("plugin %r: command name %r is empty or already taken; skipped", _plugin, name)
                return
            taken.add(name)
            sub = commands.add_parser(name, help=f"{help} [plugin {_plugin}]")
            try:
                if add_arguments is not None:
                    add_arguments(sub)
            except Exception as exc:
                log.warning("plugin %r: command %r failed to add its arguments: %s", _plugin, name, exc)
                sub.set_defaults(run=_broken(name, _plugin, exc))
                return
            sub.set_defaults(run=run)

        try:
            impl.function(register=register)
        except Exception as exc:  # one broken plugin must not take the CLI down
            log.warning("plugin %r failed to register its commands: %s: %s", plugin, type(exc).__name__, exc)


def _broken(name: str, plugin: str, exc: Exception) -> Run:
    def run(args: argparse.Namespace, context: CommandContext) -> int:
        raise ConfigurationError(f"command {name!r} from plugin {plugin!r} is broken: {type(exc).__name__}: {exc}")

    return run


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, *, registry: PluginRegistry | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    secrets = _secrets_from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("llmrelay: warning: %(message)s", secrets))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # vcrpy logs every request and whole response bodies (binary gzip included)
    # at INFO/DEBUG: noise that would bury llmrelay's own DEBUG lines under -v.
    vcr_log = logging.getLogger("vcr")
    previous_vcr_level = vcr_log.level
    vcr_log.setLevel(logging.WARNING)
    verbose = False
    try:
        if registry is None:
            from ..plugins import get_registry

            registry = get_registry()
        args = _build_parser(registry).parse_args(sys.argv[1:] if argv is None else argv)
        verbose = args.verbose
        if verbose:
            root.setLevel(logging.DEBUG)
            handler.setFormatter(_RedactingFormatter("llmrelay: %(levelname)s %(name)s: %(message)s", secrets))
        return _run(args, registry, secrets)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`llmrelay models | head`): not an error worth a message.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        except OSError:
            pass
        return EXIT_FAILURE
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        code, message = _describe(exc)
        if verbose:
            log.debug("what failed, in full:", exc_info=exc)
        sys.stderr.write("llmrelay: error: " + " ".join(redact(message, secrets).split()) + "\n")
        return code
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        vcr_log.setLevel(previous_vcr_level)


def _run(args: argparse.Namespace, registry: PluginRegistry, secrets: set[str]) -> int:
    context = CommandContext(args, registry, secrets)
    cassette = None
    with ExitStack() as stack:
        stack.callback(context.close)
        if args.cassette or args.record:
            from .cassettes import use_cassette

            if args.cassette:
                cassette = stack.enter_context(use_cassette(args.cassette, "none"))
            else:
                cassette = stack.enter_context(use_cassette(args.record, "all", secrets=secrets))
        code: int = args.run(args, context)
    if args.record and cassette is not None:  # written when its context closed, just above
        context.stderr.write(
            f"llmrelay: recorded to {args.record}, which now holds {len(cassette)} "
            "interaction(s) (keys and cookies filtered)\n"
        )
    return code


def _describe(exc: BaseException) -> tuple[int, str]:
    from .cassettes import unmatched_request

    missing = unmatched_request(exc)
    if missing is not None:
        return EXIT_FAILURE, (
            f"request not in the cassette: {missing} (--cassette replays only; record it with --record PATH)"
        )
    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, (ConfigurationError, CapabilityNotSupportedError, PluginLoadError)):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, LLMRelayError):
        return EXIT_FAILURE, str(exc)
    return EXIT_FAILURE, f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
