"""The learned selector: embeds each query and lets a router artifact choose its proposers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from moa_lab.embedding import Embedder, Memoized, build_embedder
from moa_lab.selection._artifact import Router, proposer_key
from moa_lab.topology import AgentSpec


class LearnedSelector:
    """A selector backed by a router artifact: embeds the query, predicts each proposer's success and
    cost, and calls the subset the router's rule picks. `lam` is the price of a dollar in quality
    points (larger = cheaper subsets); `k` and `max_usd` cap the subset; `diversity` is the quality
    points one nat of the chosen proposers' log-volume is worth (see `SubsetRule`; 0 = off)."""

    def __init__(self, router: Router, embedder: Embedder, *, lam: float, k: int | None, max_usd: float | None,
                 diversity: float = 0.0) -> None:
        router.check_embedder(embedder)
        self.router = router
        self.embedder = embedder
        self.lam = lam
        self.k = k
        self.max_usd = max_usd
        self.diversity = diversity
        router.rule.check_diversity(diversity)
        self._order: np.ndarray | None = None
        self._position = np.zeros(0, int)
        self._keys: tuple[str, ...] = ()

    def bind(self, candidates: Sequence[AgentSpec]) -> None:
        """Check the topology's pool against the router's once, before any query runs."""
        self._order = self.router.align(candidates)
        self._position = np.argsort(self._order)  # router index -> candidate index
        self._keys = tuple(proposer_key(c) for c in candidates)

    @cached_property
    def _static(self) -> list[int] | None:
        """The subset the router calls for every query at this selector's λ, or None where it routes."""
        return self.router.static_subset(self.lam, k=self.k) if self.max_usd is None else None

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        """Indices into `candidates` of the proposers this query calls."""
        if self._order is None or tuple(proposer_key(c) for c in candidates) != self._keys:
            self.bind(candidates)
        assert self._order is not None
        static = self._static
        if static is not None:  # training found routing no better than this subset at this λ: no embedding needed
            return [int(self._position[j]) for j in static]
        x = self.embedder.encode([query])
        p = self.router.success(x)[0]
        usd = self.router.cost(np.array([len(query)]))[0]
        chosen = self.router.choose(p, usd, lam=self.lam, k=self.k, max_usd=self.max_usd, x=x[0], diversity=self.diversity)
        return [int(self._position[j]) for j in chosen]


def learned_selector(path: str, lam: float | None = None, k: int | None = None, max_usd: float | None = None,
                     embedder: str | dict[str, Any] | None = None, diversity: float | None = None) -> LearnedSelector:
    """Route each query with a trained router artifact (`moa-lab router train`)."""
    router = Router.load(path)
    defaults = router.meta.get("defaults", {})
    built = shared_embedder(embedder if embedder is not None else router.meta["embedder"]["spec"])
    return LearnedSelector(
        router, built,
        lam=float(defaults.get("lam", 0.0) if lam is None else lam),
        k=defaults.get("k") if k is None else int(k),
        max_usd=defaults.get("max_usd") if max_usd is None else float(max_usd),
        diversity=float(defaults.get("diversity", 0.0) if diversity is None else diversity),
    )


_EMBEDDERS: dict[str, Embedder] = {}


def shared_embedder(spec: str | Mapping[str, Any]) -> Embedder:
    """One embedder per spec per process: a study builds a selector per trial, the model loads once
    and each query is embedded once."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Memoized(build_embedder(spec))
    return _EMBEDDERS[key]
