"""Static proposer subsets measured on training rows: each one's vote per row, the cost-accuracy
front, and the router's library. One `SubsetTable` is measured once per training set; folds, fronts
and cascades read their means over any rows from it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moa_lab.routing._data import RoutingData

MAX_SIZE = 5
"""Every subset of up to this many proposers is measured (plus the k most accurate for larger k)."""

Measured = tuple[float, float, list[int]]
"""(mean $ per query, vote accuracy, the subset ordered by accuracy)."""


@dataclass
class SubsetTable:
    """Subsets of a pool and, per row of the data they were measured on, whether each one's vote is
    right and how clearly its members agree.

    `order` is the pool in the vote's tie order (most accurate first) and `members[s]` lists subset
    s's proposers in that order; `outcome` and `margin` are (rows, subsets): the replayed vote
    (exactly `vote_static`) and the vote margin (`moa_lab.selection.vote_margin`); `member_cost` is
    each proposer's $ per row (0 where not called)."""

    order: list[int]
    members: list[list[int]]
    outcome: np.ndarray
    margin: np.ndarray
    member_cost: np.ndarray

    @classmethod
    def measure(cls, data: RoutingData, subsets: Sequence[Sequence[int]] | None = None, *,
                order: Sequence[int] | None = None) -> SubsetTable:
        """Measure `subsets` (default: every subset of up to MAX_SIZE proposers and the k most accurate
        for every larger k) on every row of `data`. `order` lists the pool in the vote's tie order
        (default: by accuracy on `data`)."""
        if order is None:
            order = np.argsort(-np.nanmean(data.success, axis=0), kind="stable")
        tie_order = [int(j) for j in order]
        rank = {j: r for r, j in enumerate(tie_order)}
        if subsets is None:
            subsets = all_subsets(len(data.proposers), tie_order)
        members = [sorted((int(j) for j in s), key=rank.__getitem__) for s in subsets]
        outcome, margin = vote_subsets(data.answers, data.success, members)
        return cls(tie_order, members, outcome, margin, np.nan_to_num(data.cost))

    def __len__(self) -> int:
        return len(self.members)

    def accuracy(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Each subset's vote accuracy over `rows` (default: all)."""
        return (self.outcome if rows is None else self.outcome[rows]).mean(axis=0)

    def cost(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Each subset's mean $ per query over `rows` (default: all)."""
        per_member = (self.member_cost if rows is None else self.member_cost[rows]).mean(axis=0)
        return np.array([per_member[s].sum() for s in self.members])

    def row_cost(self, s: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Subset s's $ on each of `rows`."""
        return (self.member_cost if rows is None else self.member_cost[rows])[:, self.members[s]].sum(axis=1)

    def row_costs(self) -> np.ndarray:
        """Every subset's $ on every row: (rows, subsets)."""
        incidence = np.zeros((len(self.members), self.member_cost.shape[1]))
        for s, members in enumerate(self.members):
            incidence[s, members] = 1.0
        return self.member_cost @ incidence.T

    def measured(self, rows: np.ndarray | None = None) -> list[Measured]:
        """(mean $, accuracy, subset) per subset over `rows`, as `front` and `library` read them."""
        return [(float(c), float(a), list(s)) for c, a, s in zip(self.cost(rows), self.accuracy(rows), self.members)]

    def front(self, rows: np.ndarray | None = None) -> list[int]:
        """Indices of the subsets no cheaper subset matches in accuracy over `rows`, cheapest first."""
        return front_index(self.cost(rows), self.accuracy(rows))


def all_subsets(m: int, by_accuracy: list[int], max_size: int = MAX_SIZE) -> list[list[int]]:
    """Every subset of up to `max_size` of m proposers, then the k most accurate for every larger k."""
    out = [list(c) for size in range(1, min(max_size, m) + 1) for c in itertools.combinations(range(m), size)]
    return out + [by_accuracy[:size] for size in range(max_size + 1, m + 1)]


def vote_subsets(answers: np.ndarray, success: np.ndarray, members: Sequence[Sequence[int]],
                 chunk: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """For every subset (members in tie order) and row: whether its plurality vote is right, exactly as
    `vote_static` replays it, and its vote margin. Subsets of one size are done together, in chunks
    of about `chunk` (row, subset, member) cells."""
    n = len(answers)
    outcome = np.zeros((n, len(members)), bool)
    margin = np.zeros((n, len(members)), np.float32)
    right = np.nan_to_num(success) > 0
    by_size: dict[int, list[int]] = {}
    for s, subset in enumerate(members):
        by_size.setdefault(len(subset), []).append(s)
    for size, index in by_size.items():
        step = max(1, chunk // max(1, n * size))
        for start in range(0, len(index), step):
            part = index[start:start + step]
            cols = np.array([members[s] for s in part])  # (subsets, size)
            a = [answers[:, cols[:, i]] for i in range(size)]  # per member: (rows, subsets)
            known = [ai >= 0 for ai in a]
            counts = [k.astype(np.int8) for k in known]  # votes for each member's answer
            for i in range(size):
                for j in range(i):
                    agree = (a[i] == a[j]) & known[i]
                    counts[i] += agree
                    counts[j] += agree
            top, winner = counts[0].copy(), np.zeros(counts[0].shape, np.int8)
            for i in range(1, size):  # the first member among the most voted wins
                better = counts[i] > top
                winner[better] = i
                np.maximum(top, counts[i], out=top)
            won, hit = np.zeros_like(a[0]), np.zeros(top.shape, bool)
            for i in range(size):
                mine = winner == i
                hit |= mine & right[:, cols[:, i]]
                won[mine] = a[i][mine]
            outcome[:, part] = hit
            second = np.zeros_like(top)
            for i in range(size):
                np.maximum(second, np.where(a[i] != won, counts[i], 0), out=second)
            margin[:, part] = (top - second) / size
    return outcome, margin


def measured_subsets(data: RoutingData, max_size: int = MAX_SIZE) -> list[Measured]:
    """(mean $, vote accuracy, subset ordered by accuracy) on `data` for every subset of up to
    `max_size` proposers and the k most accurate for every larger k."""
    accuracy = np.nanmean(data.success, axis=0)
    by_accuracy = [int(j) for j in np.argsort(-accuracy, kind="stable")]
    return SubsetTable.measure(data, all_subsets(len(data.proposers), by_accuracy, max_size)).measured()


def front_index(cost: np.ndarray, accuracy: np.ndarray) -> list[int]:
    """Indices of the points no cheaper point matches in accuracy, cheapest first."""
    chosen, best = [], -1.0
    for i in np.lexsort((-accuracy, cost)):
        if accuracy[i] > best:
            chosen.append(int(i))
            best = float(accuracy[i])
    return chosen


def front(measured: Sequence[Measured]) -> list[list[int]]:
    """The subsets no cheaper subset matches in accuracy, cheapest first."""
    index = front_index(np.array([c for c, _, _ in measured]), np.array([a for _, a, _ in measured]))
    return [measured[i][2] for i in index]


def library(measured: Sequence[Measured], levels: int = 24, per_level: int = 4) -> list[list[int]]:
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
