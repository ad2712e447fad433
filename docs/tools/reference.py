"""The reference tables of the docs, generated from the code so they cannot drift from it:
settings from ``Settings`` (with the CLI's help for each), every command's flags from the
argparse parser, every metric from the registries the service and the labelling edges create.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic.fields import FieldInfo

from streamer.cli import build_parser
from streamer.config import SECRET_FIELDS, Settings
from streamer.label.edge import EdgeMetrics
from streamer.metrics import Metrics

__all__ = ["cli_reference", "metrics_reference", "settings_reference", "undocumented_settings"]


def _cell(text: object) -> str:
    """Markdown table cell: pipes escaped, newlines folded."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command parser, depth first, with its words after ``streamer``."""
    yield path, parser
    for action in parser._actions:  # argparse has no public walk over subcommands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)]


def flag_helps() -> dict[str, list[tuple[str, str, str]]]:
    """Settings field -> (command, flag, help) for every flag storing into that field."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for path, parser in _commands(build_parser()):
        for action in _options(parser):
            if action.option_strings and action.help:
                found.setdefault(action.dest, []).append(
                    (" ".join(path), action.option_strings[-1], action.help))
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " \\| ".join(_type_name(a) for a in args)
    return {"SecretStr": "secret", "Path": "path"}.get(getattr(annotation, "__name__", ""),
                                                       getattr(annotation, "__name__", str(annotation)))


def _bounds(field: FieldInfo) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = []
    for meta in field.metadata:
        for attr, sign in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:,}" if isinstance(value, int) else f"{sign} {value}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer() and value >= 1000:
        return f"`{int(value):,}`"
    return f"`{value}`"


def setting_help(name: str, field: FieldInfo, helps: dict[str, list[tuple[str, str, str]]]) -> str:
    """The words a user reads for a setting: the `streamer run` flag's help, else any command's
    flag help, else the field's own description."""
    flags = helps.get(name, [])
    for command, _, text in flags:
        if command == "run":
            return text
    if flags:
        return flags[0][2]
    return field.description or ""


def undocumented_settings() -> list[str]:
    """Settings with neither a flag's help nor a description (a test keeps this empty)."""
    helps = flag_helps()
    return [n for n, f in Settings.model_fields.items() if not setting_help(n, f, helps)]


def settings_reference() -> list[str]:
    helps = flag_helps()
    lines = ["| setting (config file key) | flag | environment | type | default | allowed | what it does |",
             "|---|---|---|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        flags = sorted({f for _, f, _ in helps.get(name, [])})
        commands = sorted({c for c, _, _ in helps.get(name, []) if c != "run"})
        where = (" Flag of " + ", ".join(f"`streamer {c}`" for c in commands) + ".") if commands else ""
        secret = " Secret: masked wherever settings are shown." if name in SECRET_FIELDS else ""
        lines.append("| " + " | ".join([
            f"`{name}`",
            ", ".join(f"`{f}`" for f in flags) or "–",
            f"`STREAMER_{name.upper()}`",
            _type_name(field.annotation),
            _default(field),
            _bounds(field),
            _cell(setting_help(name, field, helps) + "." * (not setting_help(name, field, helps).endswith(".")) + where + secret),
        ]) + " |")
    return lines


def cli_reference() -> list[str]:
    lines: list[str] = []
    for path, parser in _commands(build_parser()):
        if not path:
            continue
        lines += ["", f"### `streamer {' '.join(path)}`", ""]
        if parser.description:
            lines += [_cell(parser.description), ""]
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subcommands:
            names = ", ".join(f"`{n}`" for a in subcommands for n in a.choices)
            lines += [f"Subcommands: {names}.", ""]
        options = _options(parser)
        if not options:
            continue
        lines += ["| flag | value | default | what it does |", "|---|---|---|---|"]
        for action in options:
            flag = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}` (positional)"
            if action.choices:
                value = " \\| ".join(f"`{c}`" for c in action.choices)
            elif action.nargs == 0:
                value = "–"
            else:
                value = f"`{action.metavar or action.dest.upper()}`"
            default = "–" if action.default in (None, argparse.SUPPRESS) or action.nargs == 0 else f"`{action.default}`"
            lines.append(f"| {flag} | {value} | {default} | {_cell(action.help or '')} |")
    return lines[1:]


def _metric_rows(collectors: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for collector in collectors.values():
        kind = collector._type  # prometheus_client keeps these on the wrapper, not in describe()
        name = collector._name + ("_total" if kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in collector._labelnames)
        yield name, kind, labels, collector._documentation


def _collectors(owner: object) -> dict[str, Any]:
    from prometheus_client.metrics import MetricWrapperBase

    return {k: v for k, v in vars(owner).items() if isinstance(v, MetricWrapperBase)}


def metrics_reference() -> list[str]:
    lines = ["| metric | type | labels | what it measures |", "|---|---|---|---|"]
    service = sorted(_metric_rows(_collectors(Metrics())))
    edges = sorted(_metric_rows(_collectors(EdgeMetrics("label-studio"))))
    for name, kind, labels, doc in service:
        lines.append(f"| `{name}` | {kind} | {labels or '–'} | {_cell(doc)} |")
    lines += ["", "The labelling edges (`streamer label-studio`, `streamer annotate --web`) export:", "",
              "| metric | type | labels | what it measures |", "|---|---|---|---|"]
    for name, kind, labels, doc in edges:
        lines.append(f"| `{name}` | {kind} | {labels or '–'} | {_cell(doc)} |")
    return lines
