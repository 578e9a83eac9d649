"""Static proposer subsets measured on training rows: the cost-accuracy front and the router's library."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from moa_lab.routing._data import RoutingData
from moa_lab.selection import vote_static

MAX_SIZE = 5
"""Every subset of up to this many proposers is measured (plus the k most accurate for larger k)."""


def measured_subsets(data: RoutingData, max_size: int = MAX_SIZE) -> list[tuple[float, float, list[int]]]:
    """(mean $, vote accuracy, subset ordered by accuracy) on `data` for every subset of up to
    `max_size` proposers and the k most accurate for every larger k."""
    y = data.success
    accuracy = np.nanmean(y, axis=0)
    cost = np.nanmean(data.cost, axis=0)
    by_accuracy = [int(j) for j in np.argsort(-accuracy, kind="stable")]
    m = len(data.proposers)
    subsets = [list(c) for size in range(1, min(max_size, m) + 1) for c in itertools.combinations(range(m), size)]
    subsets += [by_accuracy[:size] for size in range(max_size + 1, m + 1)]
    out = []
    for subset in subsets:
        ordered = sorted(subset, key=lambda j: -accuracy[j])
        out.append((float(cost[ordered].sum()), float(vote_static(data.answers, y, ordered).mean()), ordered))
    return out


def front(measured: Sequence[tuple[float, float, list[int]]]) -> list[list[int]]:
    """The subsets no cheaper subset matches in accuracy, cheapest first."""
    chosen, best = [], -1.0
    for _, acc, subset in sorted(measured, key=lambda s: (s[0], -s[1])):
        if acc > best:
            chosen.append(subset)
            best = acc
    return chosen


def library(measured: Sequence[tuple[float, float, list[int]]], levels: int = 24, per_level: int = 4) -> list[list[int]]:
    """Candidate subsets for per-query routing: the front, and at each of `levels` price levels
    (log-spaced) the `per_level` most accurate subsets at or under it."""
    costs = np.array([c for c, _, _ in measured])
    priced = costs[costs > 0]
    grid = [0.0]  # free models (the embedded one) cost nothing: one level then
    if len(priced):
        grid += list(np.logspace(np.log10(priced.min()), np.log10(priced.max()), levels))
    picked = {tuple(s) for s in front(measured)}
    ranked = sorted(measured, key=lambda s: -s[1])
    for level in grid:
        under = [subset for c, _, subset in ranked if c <= level * (1 + 1e-9)]
        picked |= {tuple(subset) for subset in under[:per_level]}
    return sorted((list(s) for s in picked), key=lambda s: (len(s), s))
