"""One (kind, name) -> factory registry that remembers how every object was built."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from moa_lab.core import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

ENTRY_POINT_GROUP = "moa_lab.plugins"
"""Plugin packages list modules here; importing a module registers what it decorates."""


@dataclass(frozen=True)
class Registered:
    """A registered factory and the help line shown by `moa-lab topologies`."""

    kind: str
    name: str
    factory: Callable[..., Any]
    summary: str = ""


@dataclass(frozen=True)
class BuildRecord:
    """The arguments an object was built with: enough to build it again."""

    kind: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


_ENTRIES: dict[tuple[str, str], Registered] = {}
_plugins_loaded = False


def register(kind: str, name: str | None = None) -> Callable[[F], F]:
    """Decorator registering a factory under (kind, name); the name defaults to the function name."""

    def decorate(factory: F) -> F:
        key = (kind, name or factory.__name__.replace("_", "-"))
        summary = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        _ENTRIES[key] = Registered(kind, key[1], factory, summary)
        return factory

    return decorate


def names(kind: str) -> list[str]:
    """Sorted names registered for `kind` (plugins included)."""
    _load_plugins()
    return sorted(n for k, n in _ENTRIES if k == kind)


def lookup(kind: str, name: str, *, where: str = "") -> Registered:
    """The entry for (kind, name), or a ConfigError that suggests the closest names."""
    _load_plugins()
    entry = _ENTRIES.get((kind, name))
    if entry is None:
        raise ConfigError(_unknown(f"{kind} {name!r}", name, names(kind), where))
    return entry


def build(kind: str, name: str, args: Mapping[str, Any] | None = None, *, where: str = "") -> Any:
    """Build a registered object, checking argument names first, and remember the arguments."""
    entry = lookup(kind, name, where=where)
    args = dict(args or {})
    check_args(entry, args, where=where)
    obj = entry.factory(**args)
    try:
        obj.build_record = BuildRecord(kind, name, args)
    except (AttributeError, TypeError, ValueError):  # frozen or slotted objects: their spec is the record
        pass
    return obj


def check_args(entry: Registered, args: Mapping[str, Any], *, where: str = "") -> None:
    """Reject argument names the factory does not take, and missing required ones."""
    params = inspect.signature(entry.factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for arg in args:
        if arg not in accepted:
            at = f"{where}.{arg}" if where else arg
            raise ConfigError(_unknown(f"argument {arg!r} of {entry.kind} {entry.name!r}", arg, accepted, at))
    for n, p in params.items():
        if p.default is p.empty and p.kind is not p.VAR_POSITIONAL and n not in args:
            at = f"{where}: " if where else ""
            raise ConfigError(f"{at}{entry.kind} {entry.name!r} needs argument {n!r}")


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`; did you mean 'x' or 'y'?` for the known names closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _unknown(what: str, name: str, known: list[str], where: str) -> str:
    hint = did_you_mean(name, known) or f"; known: {', '.join(known) or 'none'}"
    at = f"{where}: " if where else ""
    return f"{at}unknown {what}{hint}"


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
