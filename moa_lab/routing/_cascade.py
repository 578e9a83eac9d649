"""Learning cascades on training rows, and replaying them on recorded answers.

A cascade calls a cheap subset first and stops when its answers agree enough, else calls more, up to
a full subset (`moa_lab.selection.CascadePlan`). Candidates: every full subset of the router's
library (good static subsets at every price), every chain of nested subsets inside it of up to
`max_stages` stages, and every stop threshold the stage's vote margin can take. Each candidate is
replayed on every training row from the `SubsetTable` (votes and margins of all small subsets), and
the plans kept are the candidates no cheaper candidate matches in training accuracy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moa_lab.routing._data import RoutingData
from moa_lab.routing._subsets import MAX_SIZE, SubsetTable, front_index, library, vote_subsets
from moa_lab.selection import CascadePlan

MAX_STAGES = 3


@dataclass
class Candidates:
    """Cascade candidates replayed on training rows: per candidate, its cumulative subsets (table
    columns, one per stage), stop thresholds, and accuracy and mean $ over every row."""

    columns: list[tuple[int, ...]]
    thresholds: list[tuple[float, ...]]
    accuracy: np.ndarray
    usd: np.ndarray

    def plan(self, i: int, table: SubsetTable, accuracy: float | None = None, usd: float | None = None) -> CascadePlan:
        """Candidate i as a plan (proposer indices in the table's pool)."""
        cumulative = [table.members[c] for c in self.columns[i]]
        stages, seen = [], set()
        for members in cumulative:
            stages.append(tuple(j for j in members if j not in seen))
            seen |= set(members)
        return CascadePlan(tuple(stages), self.thresholds[i], tuple(cumulative[-1]),
                           accuracy=None if accuracy is None else round(float(accuracy), 6),
                           usd=None if usd is None else float(usd))


def candidates(data: RoutingData, table: SubsetTable, *, max_stages: int = MAX_STAGES, per_level: int = 8) -> Candidates:
    """Replay every candidate cascade on the rows `table` was measured on (`data`'s rows)."""
    column = {tuple(s): c for c, s in enumerate(table.members)}
    full = [s for s in library(table.measured(), per_level=per_level) if len(s) <= MAX_SIZE]
    rank = {j: r for r, j in enumerate(table.order)}
    cols: list[tuple[int, ...]] = []
    taus: list[tuple[float, ...]] = []
    accuracy, usd = [], []
    subset_cost = table.row_costs()
    for subset in full:
        members = sorted(subset, key=rank.__getitem__)
        chains = [c for c in _chains(members, max_stages) if all(tuple(s) in column for s in c)]
        chain_cols, chain_taus = [], []
        for chain in chains:
            levels = [[k / len(s) for k in range(1, len(s) + 1)] for s in chain[:-1]]
            for tau in itertools.product(*levels):
                chain_cols.append(tuple(column[tuple(s)] for s in chain))
                chain_taus.append(tuple(tau))
        right, spend = replay_columns(table, chain_cols, chain_taus, subset_cost)
        accuracy.append(right.mean(axis=0))
        usd.append(spend.mean(axis=0))
        cols += chain_cols
        taus += chain_taus
    return Candidates(cols, taus, np.concatenate(accuracy), np.concatenate(usd))


def replay_columns(table: SubsetTable, columns: Sequence[tuple[int, ...]], thresholds: Sequence[tuple[float, ...]],
                   subset_cost: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(right, $) per row and candidate: stage t's cumulative subset is table column columns[i][t];
    the cascade stops after it when its margin reaches thresholds[i][t]. `subset_cost` (rows, table
    columns), when given, is each subset's $ per row, computed once for many calls."""
    if subset_cost is None:
        subset_cost = table.row_costs()
    depth = max(len(c) for c in columns)
    cols = np.array([c + (c[-1],) * (depth - len(c)) for c in columns])  # (candidates, depth)
    taus = np.array([th + (0.0,) * (depth - len(th)) for th in thresholds])
    stages = np.array([len(c) for c in columns])
    n, k = table.outcome.shape[0], len(columns)
    right = np.zeros((n, k), bool)
    spend = np.zeros((n, k))
    open_ = np.ones((n, k), bool)
    for t in range(depth):
        idx = cols[:, t]
        stop = open_ & ((stages == t + 1) | (table.margin[:, idx] >= taus[:, t] - 1e-6))
        right |= stop & table.outcome[:, idx]
        spend = np.where(stop, subset_cost[:, idx], spend)
        open_ &= ~stop
    return right, spend


def replay(plan: CascadePlan, data: RoutingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, $, proposers called) per row of `data` when each query runs `plan` on its recorded
    answers: its votes and margins are those of `vote_subsets`, which `tests/test_routing_cascade.py`
    checks against `vote_margin` and the `vote` aggregator."""
    cumulative = [plan.called(t) for t in range(len(plan.stages))]
    outcome, margin = vote_subsets(data.answers, data.success, cumulative)
    n = len(data.ids)
    right, spend, calls = np.zeros(n, bool), np.zeros(n), np.zeros(n)
    open_ = np.ones(n, bool)
    cost = np.nan_to_num(data.cost)
    for t, members in enumerate(cumulative):
        stop = open_ & (np.ones(n, bool) if t == len(cumulative) - 1 else margin[:, t] >= plan.min_agreement[t] - 1e-6)
        right |= stop & outcome[:, t]
        spend[stop] = cost[stop][:, members].sum(axis=1)
        calls[stop] = len(members)
        open_ &= ~stop
    return right, spend, calls


def front_plans(found: Candidates, table: SubsetTable) -> list[CascadePlan]:
    """The candidates no cheaper candidate matches in training accuracy, as plans, cheapest first."""
    return [found.plan(i, table, found.accuracy[i], found.usd[i]) for i in front_index(found.usd, found.accuracy)]


def _chains(members: list[int], max_stages: int) -> list[list[list[int]]]:
    """Every chain of nested subsets of `members` (kept in their order) ending in all of them, with
    at most `max_stages` links: [[members]], [[a], members], [[a], [a, b], members], ..."""
    proper = [[j for j in members if j in set(c)] for size in range(1, len(members))
              for c in itertools.combinations(members, size)]
    chains: list[list[list[int]]] = [[members]]
    frontier = [[members]]
    for _ in range(max_stages - 1):
        grown = []
        for chain in frontier:
            inner = set(chain[0])
            grown += [[s, *chain] for s in proper if len(s) < len(inner) and set(s) < inner]
        chains += grown
        frontier = grown
    return chains

