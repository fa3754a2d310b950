"""The built-in ``llmrelay`` commands: ``providers``, ``models``, ``chat``, ``validate``.

Each is ``run(args, context) -> exit code``, the same signature plugin
commands have (see :mod:`llmrelay.core.cli.main`), with a
:class:`~.context.CommandContext`. Output goes to ``context.stdout``; errors
are raised and rendered by :mod:`.main`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..secrets import redact
from .context import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandContext, UsageError

if TYPE_CHECKING:
    from ..catalog import ModelInfo
    from ..plugins import PluginRegistry
    from ..provider import Provider

__all__ = ["cmd_chat", "cmd_models", "cmd_providers", "cmd_validate", "format_price"]


def _print_table(out: TextIO, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")


def cmd_providers(args: argparse.Namespace, context: CommandContext) -> int:
    registry, out = context.registry, context.stdout
    versions = {p.name: p.version for p in registry.loaded}
    providers = registry.providers()
    layers = _layers_by_plugin(registry)
    if args.json:
        import json

        data = {
            "providers": [
                {
                    "name": n,
                    "class": e.target,
                    "plugin": e.plugin,
                    "distribution": e.distribution,
                    "version": versions.get(e.plugin),
                }
                for n, e in sorted(providers.items())
            ],
            "layers": [
                {
                    "name": s.name,
                    "position": s.position,
                    "plugin": plugin,
                    "enabled_by_default": s.enabled_by_default,
                    "description": s.description,
                }
                for s, plugin in layers
            ],
            "plugins": [
                {"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module}
                for p in registry.loaded
            ],
            "failed": [
                {"name": f.name, "distribution": f.distribution, "target": f.target, "error": f.error}
                for f in registry.failed
            ],
        }
        out.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK

    def dist(name: str | None, plugin: str | None) -> str:
        version = versions.get(plugin or "")
        return f"{name} {version}" if name and version else (name or "-")

    out.write("Providers:\n")
    _print_table(
        out,
        ["  NAME", "CLASS", "PLUGIN", "DISTRIBUTION"],
        [[f"  {n}", e.target, e.plugin, dist(e.distribution, e.plugin)] for n, e in sorted(providers.items())],
    )
    out.write("\nLayers around every call (outermost first):\n")
    plugin_dists = {p.name: p.distribution for p in registry.loaded}
    _print_table(
        out,
        ["  POSITION", "NAME", "PLUGIN", "DISTRIBUTION", "DEFAULT", "DESCRIPTION"],
        [
            [
                f"  {s.position}",
                s.name,
                plugin,
                dist(plugin_dists.get(plugin), plugin),
                "on" if s.enabled_by_default else "off",
                s.description,
            ]
            for s, plugin in layers
        ],
    )
    if registry.failed:
        out.write("\nPlugins that failed to load:\n")
        _print_table(
            out,
            ["  NAME", "DISTRIBUTION", "TARGET", "ERROR"],
            [
                [f"  {f.name}", f.distribution or "-", f.target, redact(f.error, context.secrets)]
                for f in registry.failed
            ],
        )
    return EXIT_OK


def _layers_by_plugin(registry: PluginRegistry) -> list[tuple[Any, str]]:
    """Each layer spec with the plugin that registered it, outermost first."""
    found: list[tuple[Any, str]] = []
    for impl in registry.pm.hook.llmrelay_register_layers.get_hookimpls():
        impl.function(register=lambda spec, _p=impl.plugin_name: found.append((spec, _p)))
    return sorted(found, key=lambda item: (item[0].position, item[0].name))


def format_price(value: Any) -> str:
    """A price per million tokens for display: '$0.15', 'free', 'variable' (negative), '-' (none)."""
    if value is None:
        return "-"
    if value < 0:
        return "variable"
    if value == 0:
        return "free"
    whole, _, fraction = format(value.normalize(), "f").partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _per_million(pricing: Any, field: str) -> Any:
    from decimal import Decimal

    price = getattr(pricing, field)
    return None if price is None else price * Decimal(1_000_000)


def _json_row(model: ModelInfo, marked_up: bool) -> dict[str, Any]:
    row = model.model_dump(mode="json")
    row["category"] = model.category
    row["prompt_per_million"] = _json_decimal(_per_million(model.pricing, "prompt"))
    row["completion_per_million"] = _json_decimal(_per_million(model.pricing, "completion"))
    if marked_up:
        row["base_prompt_per_million"] = _json_decimal(_per_million(model.service_pricing, "prompt"))
        row["base_completion_per_million"] = _json_decimal(_per_million(model.service_pricing, "completion"))
    return row


def cmd_models(args: argparse.Namespace, context: CommandContext) -> int:
    provider = context.provider()
    listing = provider.list_models(options=context.call_options())
    needle = (args.filter or "").lower()
    models = sorted(
        (m for m in listing if needle in m.id.lower() or needle in (m.name or "").lower()), key=lambda m: m.id
    )
    if listing.fallback:
        context.stderr.write(
            "llmrelay: note: the service could not be reached; this is llmrelay's built-in "
            "fallback list and its prices may be out of date\n"
        )
    marked_up = listing.markup != 1
    if args.json:
        import json

        data = {
            "provider": listing.provider or provider.instance_name,
            "fallback": listing.fallback,
            "markup": _json_decimal(listing.markup),
            "models": [_json_row(m, marked_up) for m in models],
        }
        context.stdout.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK if models else EXIT_FAILURE
    if not models:
        context.stderr.write(f"llmrelay: no model matches {args.filter!r} ({len(listing)} listed)\n")
        return EXIT_FAILURE
    _print_table(
        context.stdout,
        ["MODEL", "CONTEXT", "CATEGORY", "PROMPT $/M", "COMPLETION $/M"],
        [
            [
                m.id,
                str(m.context_length or "-"),
                m.category,
                format_price(_per_million(m.pricing, "prompt")),
                format_price(_per_million(m.pricing, "completion")),
            ]
            for m in models
        ],
    )
    shown = f"{len(models)} of {len(listing)}" if needle else str(len(models))
    markup = f", with a {_json_decimal(listing.markup)}x markup" if marked_up else ""
    context.stdout.write(f"{shown} models; prices in USD per million tokens{markup}\n")
    return EXIT_OK


def _json_decimal(value: Any) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _read_prompt(args: argparse.Namespace) -> str:
    prompt: str | None = args.prompt
    missing = "chat needs a prompt: pass it as an argument or pipe it on stdin"
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise UsageError(missing)
        prompt = sys.stdin.read()
        if not prompt and args.prompt is None:
            raise UsageError(missing)
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    return prompt


def cmd_chat(args: argparse.Namespace, context: CommandContext) -> int:
    prompt = _read_prompt(args)
    provider = context.provider()
    model = args.model or provider.settings.default_model
    if not model:
        raise UsageError(
            f"no model: pass --model (e.g. --model openai/gpt-4o-mini) or set default_model in "
            f"[providers.{provider.instance_name}]"
        )
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": prompt}
    ]
    request: dict[str, Any] = {"model": model, "messages": messages}
    if args.max_tokens is not None:
        request["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        request["temperature"] = args.temperature
    out = context.stdout
    if not args.stream:
        response = provider.execute(request, options=context.call_options())
        if args.json:
            out.write(response.model_dump_json(indent=2) + "\n")
        else:
            for call in response.tool_calls:
                out.write(f"[tool call {call.function.name}({call.function.arguments})]\n")
            out.write(response.text + "\n")
        return EXIT_OK
    return _stream_chat(provider, request, args.json, out, context.call_options())


def _stream_chat(provider: Provider, request: dict[str, Any], as_json: bool, out: TextIO, options: Any) -> int:
    import json

    wrote_text = False
    try:
        with provider.stream_execute(request, options=options) as stream:
            for chunk in stream:
                if as_json:
                    out.write(json.dumps(_chunk_json(chunk)) + "\n")
                elif chunk.text:
                    out.write(chunk.text)
                    wrote_text = True
                out.flush()
    finally:
        # What arrived stays on screen, ending its line, before any error below it.
        if wrote_text:
            out.write("\n")
            out.flush()
    return EXIT_OK


def _chunk_json(chunk: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in ("id", "model", "text", "reasoning", "finish_reason", "served_by"):
        value = getattr(chunk, name)
        if value:
            data[name] = value
    if chunk.tool_calls:
        data["tool_calls"] = [
            {"index": d.index, "id": d.id, "name": d.name, "arguments": d.arguments} for d in chunk.tool_calls
        ]
    if chunk.usage is not None:
        data["usage"] = chunk.usage.model_dump(mode="json", exclude_none=True)
    return data


def cmd_validate(args: argparse.Namespace, context: CommandContext) -> int:
    report = context.provider().validate_config()
    out = context.stdout
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
    else:
        rows = [
            ("provider", report.provider),
            ("outcome", report.outcome),
            ("message", report.message),
            ("key", report.key_label),
            ("limit", report.limit),
            ("remaining", report.limit_remaining),
            ("usage", report.usage),
            ("free tier", report.is_free_tier),
        ]
        for label, value in rows:
            if value is not None:
                out.write(f"{label + ':':<11}{value}\n")
        for problem in report.problems:
            out.write(f"  - {problem}\n")
    if report.ok:
        return EXIT_OK
    return EXIT_USAGE if report.outcome == "config_error" else EXIT_FAILURE
