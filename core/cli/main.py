"""The ``llmrelay`` command line.

::

    llmrelay [--config PATH] [--provider NAME] [--cassette PATH | --record PATH] [-v] COMMAND ...

    llmrelay providers                     installed providers, layers, plugins, and failed plugins with why
    llmrelay models [FILTER] [--json]      models with prices per million tokens
    llmrelay chat [PROMPT] [--model M] [--system S] [--stream] [--json]   (PROMPT or stdin)
    llmrelay validate [--json]             check config and key; exit 0 only when valid
    llmrelay config [--json]               effective settings and where each came from (secrets masked)

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
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import CapabilityNotSupportedError, ConfigurationError, LLMRelayError, PluginLoadError
from ..gateway.command import add_serve_arguments, cmd_serve
from ..secrets import redact
from .commands import cmd_chat, cmd_models, cmd_providers, cmd_validate
from .config_command import add_config_arguments, cmd_config
from .context import (
    DEFAULT_PROVIDER,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    REPLAY_PLACEHOLDER_KEY,
    CommandContext,
    Run,
    UsageError,
)

if TYPE_CHECKING:
    from ..plugins import PluginRegistry

# The context's names stay importable from here, where they were first defined.
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

log = logging.getLogger("llmrelay.cli")


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage and exits from inside parse_args; we
    # want one line and the exit code decided in one place.
    def error(self, message: str) -> NoReturn:
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


# --------------------------------------------------------------------------- the parser


def _build_parser(registry: PluginRegistry) -> _Parser:
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

    sub = commands.add_parser("config", help="effective settings of every provider and plugin, and their origins")
    add_config_arguments(sub)
    sub.set_defaults(run=cmd_config)

    sub = commands.add_parser("serve", help="run the gateway: OpenAI's and Anthropic's APIs over the providers")
    add_serve_arguments(sub)
    sub.set_defaults(run=cmd_serve)

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
        with suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
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
