"""One (kind, name) -> factory registry: built-ins load on first lookup, plugins by entry point."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from moa_lab.core import ConfigError
from moa_lab.registry._kinds import BUILTINS, Kind, as_kind, did_you_mean

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


_ENTRIES: dict[tuple[str, str], Registered] = {}
_plugins_loaded = False
_builtins_loaded: set[Kind] = set()


def register(kind: str | Kind, name: str | None = None) -> Callable[[F], F]:
    """Decorator registering a factory under (kind, name); the name defaults to the function name.
    An unknown kind is a ConfigError at once."""
    kind = as_kind(kind).value

    def decorate(factory: F) -> F:
        key = (kind, name or factory.__name__.replace("_", "-"))
        summary = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        _ENTRIES[key] = Registered(kind, key[1], factory, summary)
        return factory

    return decorate


def names(kind: str | Kind) -> list[str]:
    """Sorted names registered for `kind` (built-ins and plugins included)."""
    kind = _load(kind)
    return sorted(n for k, n in _ENTRIES if k == kind)


def lookup(kind: str | Kind, name: str, *, where: str = "") -> Registered:
    """The entry for (kind, name), or a ConfigError that suggests the closest names."""
    kind = _load(kind)
    entry = _ENTRIES.get((kind, name))
    if entry is None:
        raise ConfigError(_unknown(f"{kind} {name!r}", name, names(kind), where))
    return entry


def build(kind: str | Kind, name: str, args: Mapping[str, Any] | None = None, *, where: str = "") -> Any:
    """Build a registered object, checking argument names first. The (kind, name, args) a caller
    passes is the record of how it was built: specs carry it, so objects do not."""
    entry = lookup(kind, name, where=where)
    args = dict(args or {})
    check_args(entry, args, where=where)
    return entry.factory(**args)


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


def _unknown(what: str, name: str, known: list[str], where: str) -> str:
    hint = did_you_mean(name, known) or f"; known: {', '.join(known) or 'none'}"
    at = f"{where}: " if where else ""
    return f"{at}unknown {what}{hint}"


def _load(kind: str | Kind) -> str:
    """Validate `kind` and register its built-ins and the plugins (once each); the kind's name."""
    checked = as_kind(kind)
    if checked not in _builtins_loaded:
        for module in BUILTINS[checked]:
            importlib.import_module(module)
        _builtins_loaded.add(checked)
    _load_plugins()
    return checked.value


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
