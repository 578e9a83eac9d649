"""The kinds of buildable things, and which module's import registers each kind's built-ins."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from enum import Enum

from moa_lab.core import ConfigError


class Kind(str, Enum):
    """A kind of registered factory. Each kind's built-ins are registered by importing the modules
    in `BUILTINS`, which the registry does on the first lookup of that kind: nothing depends on
    which packages happened to be imported before."""

    TOPOLOGY = "topology"
    PROPOSER = "proposer"
    AGGREGATOR = "aggregator"
    EXTRACTOR = "extractor"
    SELECTOR = "selector"
    SCORER = "scorer"
    EMBEDDER = "embedder"


# Module names as text: the registry sits below these packages and must not import them at load time.
BUILTINS: dict[Kind, tuple[str, ...]] = {
    Kind.TOPOLOGY: ("moa_lab.topology._presets",),
    Kind.PROPOSER: ("moa_lab.agents._builtin",),
    Kind.AGGREGATOR: ("moa_lab.agents._builtin",),
    Kind.EXTRACTOR: ("moa_lab.agents._extractors",),
    Kind.SELECTOR: ("moa_lab.selection._selector",),
    Kind.SCORER: ("moa_lab.scoring._scorer", "moa_lab.scoring._judges"),
    Kind.EMBEDDER: ("moa_lab.embedding._embedder",),
}


def as_kind(kind: str | Kind) -> Kind:
    """The `Kind` named `kind`, or a ConfigError that suggests the closest kind."""
    try:
        return Kind(kind)
    except ValueError:
        known = [k.value for k in Kind]
        hint = did_you_mean(str(kind), known) or f"; known: {', '.join(known)}"
        raise ConfigError(f"unknown kind {kind!r}{hint}") from None


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`; did you mean 'x' or 'y'?` for the known names closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
