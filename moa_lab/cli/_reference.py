"""References generated from the code: every registered preset and agent with its arguments, and
the command line, as Markdown (docs/presets.md, docs/cli.md; `scripts/make_docs.py` writes them and
a test checks they are current)."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from moa_lab.registry import lookup, names

KINDS = (("topology", "Presets"), ("proposer", "Proposers"), ("aggregator", "Aggregators"),
         ("extractor", "Extractors"), ("selector", "Selectors"))


@dataclass(frozen=True)
class Argument:
    """One argument of a registered factory: its type, default (None: required) and meaning."""

    name: str
    type: str
    default: str | None
    meaning: str


@dataclass(frozen=True)
class FactoryDoc:
    """A registered factory's description (its docstring's first paragraph) and arguments."""

    kind: str
    name: str
    description: str
    arguments: tuple[Argument, ...]


def describe(kind: str, name: str) -> FactoryDoc:
    """The description and arguments of a registered preset, agent, extractor or selector."""
    factory = lookup(kind, name).factory
    doc = inspect.getdoc(factory) or ""
    meanings = _args_section(doc)
    args = []
    for p in inspect.signature(factory).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        type_ = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
        default = None if p.default is p.empty else repr(p.default)
        args.append(Argument(p.name, "" if p.annotation is p.empty else str(type_), default, meanings.get(p.name, "")))
    return FactoryDoc(kind, name, _first_paragraph(doc), tuple(args))


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n", 1)[0].split())


def _args_section(doc: str) -> dict[str, str]:
    """`Args:` entries of a Google-style docstring, continuation lines joined."""
    match = re.search(r"^Args:\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    out: dict[str, str] = {}
    current = None
    for line in (match.group(1) if match else "").splitlines():
        entry = re.match(r"\s{4}(\w+)(?: \([^)]*\))?: (.*)", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def presets_markdown() -> str:
    """docs/presets.md: every registered preset, agent, extractor and selector with its arguments."""
    lines = ["# Presets and agents", "",
             "Generated from the code by `python scripts/make_docs.py` (a test checks it is current); "
             "`moa-lab topologies --show NAME` prints the same for one preset with its spec.", "",
             "Beside `preset: NAME` and its arguments, any preset takes `selector:` (one of the selectors "
             "below) and `cascade:` (`{stages, threshold, measure, extractor, embedder, exit}`: every "
             "proposer layer called in stages until its answers agree; docs/guide.md, Cascades).", ""]
    for kind, title in KINDS:
        lines += [f"## {title}", ""]
        for name in names(kind):
            lines += _factory_markdown(describe(kind, name))
    return "\n".join(lines).rstrip() + "\n"


def _factory_markdown(doc: FactoryDoc) -> list[str]:
    lines = [f"### `{doc.name}`", "", doc.description, ""]
    if doc.arguments:
        lines += ["| argument | type | default | meaning |", "|---|---|---|---|"]
        for a in doc.arguments:
            default = "required" if a.default is None else f"`{a.default}`"
            lines.append(f"| `{a.name}` | {_cell(a.type)} | {_cell(default)} | {_cell(a.meaning)} |")
        lines.append("")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def cli_markdown(app: Any) -> str:
    """docs/cli.md: every command of the typer `app` with its arguments, options and help."""
    import typer

    root = typer.main.get_command(app)
    lines = ["# Command line reference", "",
             "Generated from the code by `python scripts/make_docs.py` (a test checks it is current). "
             "`moa-lab COMMAND --help` prints the same.", ""]
    lines += _command_markdown(root, "moa-lab", top=True)
    return "\n".join(lines).rstrip() + "\n"


def _command_markdown(cmd: Any, path: str, *, top: bool = False) -> list[str]:
    # typer ships its own copy of click: its commands are read by duck typing
    ctx = cmd.context_class(cmd, info_name=path)
    lines = [] if top else [f"## `{path}`", ""]
    if cmd.help:
        lines += [inspect.cleandoc(cmd.help).replace("\b\n", ""), ""]
    params = [p for p in cmd.params if p.name != "help"]
    if params:
        lines += ["| argument / option | default | help |", "|---|---|---|"]
        for p in params:
            option = getattr(p, "param_type_name", "") == "option"
            shown = " / ".join([*p.opts, *p.secondary_opts]) if option else str(p.name).upper()
            default = p.default if p.default not in (None, (), []) and not callable(p.default) else ""
            help_text = getattr(p, "help", "") or ""
            lines.append(f"| `{_cell(shown)}` | {_cell(str(default))} | {_cell(help_text)} |")
        lines.append("")
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines += _command_markdown(sub, f"{path} {name}")
    return lines
