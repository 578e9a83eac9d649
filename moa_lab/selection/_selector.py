"""Selectors choose, per query, which layer-1 proposers are called."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from moa_lab.core import ConfigError
from moa_lab.registry import build, register
from moa_lab.topology import AgentSpec, SelectorSpec


@runtime_checkable
class Selector(Protocol):
    """(query, candidate proposers) -> the indices of the candidates to call, in order."""

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]: ...


@runtime_checkable
class PoolSelector(Selector, Protocol):
    """A selector trained for one pool of proposers: `bind` checks the topology's layer 1 against
    it once, when the Pipeline is built, so a mismatch fails before any call."""

    def bind(self, candidates: Sequence[AgentSpec]) -> None: ...


def selector(name: str | None = None):  # type: ignore[no-untyped-def]
    """Register a selector factory under kind "selector"."""
    return register("selector", name)


def build_selector(spec: SelectorSpec | None) -> Selector:
    """The selector a topology names (every proposer when it names none)."""
    if spec is None:
        return AllProposers()
    return build("selector", spec.kind, spec.args, where="selector")


class AllProposers:
    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        return list(range(len(candidates)))


class FirstK:
    def __init__(self, k: int) -> None:
        self.k = k

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        return list(range(min(self.k, len(candidates))))


class RandomK:
    """k proposers drawn per query, reproducibly: the draw depends only on (seed, query)."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self.seed = seed

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        rng = random.Random(f"{self.seed}:{query}")
        return sorted(rng.sample(range(len(candidates)), min(self.k, len(candidates))))


def _positive(k: int) -> int:
    if k < 1:
        raise ConfigError(f"selector k must be at least 1, not {k}")
    return k


@selector("all")
def all_proposers() -> AllProposers:
    """Call every proposer (the paper's MoA)."""
    return AllProposers()


@selector("first-k")
def first_k(k: int) -> FirstK:
    """Call the first k proposers of layer 1."""
    return FirstK(_positive(k))


@selector("random-k")
def random_k(k: int, seed: int = 0) -> RandomK:
    """Call k proposers drawn at random per query (a router baseline)."""
    return RandomK(_positive(k), seed)


@selector("learned")
def learned(path: str, lam: float | None = None, k: int | None = None, max_usd: float | None = None,
            embedder: str | dict[str, Any] | None = None, diversity: float | None = None) -> Selector:
    """Route each query with a trained router artifact (`moa-lab router train`); λ, k, max_usd and
    diversity default to the artifact's.

    Args:
        path: the router artifact folder.
        lam: quality points one dollar is worth (larger = cheaper subsets).
        k: at most this many proposers per query.
        max_usd: at most this predicted $ per query.
        embedder: the query embedder (default: the one the router was trained with).
        diversity: quality points one nat of the chosen proposers' error log-volume is worth:
            above 0, subsets whose members err alike lose to ones whose errors differ.
    """
    from moa_lab.selection._learned import learned_selector  # numpy and the embedder load only when used

    return learned_selector(path, lam, k, max_usd, embedder, diversity)


@selector("diverse")
def diverse(path: str, k: int, diversity: float | None = None, embedder: str | dict[str, Any] | None = None) -> Selector:
    """Call the k proposers that are competent near the query and whose mistakes differ, read
    without labels from a reference set of recorded answers (`moa-lab router diverse`).

    Args:
        path: the reference folder.
        k: the number of proposers per query.
        diversity: the weight of dissimilar mistakes against competence (1, the default, is a
            determinantal point process; 0 is the k most competent).
        embedder: the query embedder (default: the one the reference was built with).
    """
    from moa_lab.selection._diverse import diverse_selector  # numpy and the embedder load only when used

    return diverse_selector(path, _positive(k), diversity, embedder)
