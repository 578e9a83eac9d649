"""Never below static: per λ, route each query or call the best static subset, by cross-validation.

Per fold of the training split, the router's subset rule (out-of-fold success predictions, the
library measured on the fold's other rows) routes each held-out row at every λ, and the static
policy "the most accurate subset on the other rows at no more than routing's mean $" answers the same
rows (at λ = 0: the most accurate subset, whatever its price). Routing is kept at a λ only when its
paired accuracy gain over that static policy exceeds `z` standard errors (the static side may spend
`SAME_PRICE` times routing's $); elsewhere the router calls the best static subset (on the whole
training split) at routing's price, for every query (`moa_lab.selection` `static_option`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from moa_lab.routing._data import RoutingData
from moa_lab.routing._predictors import Folds
from moa_lab.routing._subsets import SubsetTable, front_index, library
from moa_lab.selection import Library, OperatingPoint, SubsetRule, VoteModel, vote_static

LAMBDAS = (0.0, *np.round(np.logspace(0, 5, 51), 3).tolist())
"""λ values at which a router's held-out curve is swept: the quality points one dollar is worth."""
CHOICE_LAMBDAS = (0.0, *np.round(np.logspace(0.2, 5, 13), 3).tolist())
"""λ values at which training compares routing with static subsets (each costs routing hundreds of
training queries; a selector at another λ follows the nearest)."""
SAME_PRICE = 1.05
"""The static policy may spend this much more than routing and still count as "at its price": a
subset's mean $ differs a little between folds, and a tie in $ must not count as routing's win."""


def routed_out_of_fold(data: RoutingData, x: np.ndarray, folds: Folds, p: np.ndarray, usd: np.ndarray, model: VoteModel,
                       table: SubsetTable, lib_k: int, lib_shrink: float, lambdas: Sequence[float],
                       rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(right, $) per training row and λ when each fold's rows are routed by a rule that never saw
    them: `p` out-of-fold success predictions, `usd` predicted $ per row and proposer. Only `rows`
    (default: all) are routed; the others stay False and 0."""
    n = len(data.ids)
    right = np.zeros((n, len(lambdas)), bool)
    spend = np.zeros((n, len(lambdas)))
    routed = np.ones(n, bool) if rows is None else np.isin(np.arange(n), rows)
    column = {tuple(s): c for c, s in enumerate(table.members)}
    cost = np.nan_to_num(data.cost)
    for train, val in folds:
        subsets = library(table.measured(train))
        index = [column[tuple(s)] for s in subsets]
        width = max(len(s) for s in subsets)
        outcome = table.outcome[train][:, index].astype(np.float32)
        rule = SubsetRule(model, Library(
            x[train].astype(np.float32), np.array([s + [-1] * (width - len(s)) for s in subsets], np.int16), outcome,
            outcome.mean(axis=0), data.answers[train], data.success[train].astype(np.float32), lib_k, lib_shrink))
        for i in val[routed[val]]:
            for l, lam in enumerate(lambdas):
                chosen = rule.choose(p[i], usd[i], lam=float(lam), x=x[i])
                right[i, l] = vote_static(data.answers[i:i + 1], data.success[i:i + 1], chosen)[0]
                spend[i, l] = cost[i, chosen].sum()
    return right, spend


def static_out_of_fold(table: SubsetTable, folds: Folds, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """(right, $) per training row of the policy "the most accurate subset on the fold's other rows
    whose mean $ there is at most `budget`" (the cheapest subset when none is)."""
    n = table.outcome.shape[0]
    right, spend = np.zeros(n, bool), np.zeros(n)
    for train, val in folds:
        s = _at_budget(table.cost(train), table.accuracy(train), budget)
        right[val] = table.outcome[val, s]
        spend[val] = table.member_cost[val][:, table.members[s]].sum(axis=1)
    return right, spend


def fit_operating_points(table: SubsetTable, folds: Folds, right: np.ndarray, spend: np.ndarray,
                         lambdas: Sequence[float], z: float, rows: np.ndarray | None = None) -> list[OperatingPoint]:
    """Per λ: routing's out-of-fold `right` and `spend` (rows × λ) against the static policy at its
    price, both on `rows` (default: all); the static subset offered is the best on the whole
    training split at that price."""
    rows = np.arange(table.outcome.shape[0]) if rows is None else np.asarray(rows)
    right, spend = right[rows], spend[rows]
    n = len(rows)
    cost, accuracy = table.cost(), table.accuracy()
    points = []
    for l, lam in enumerate(lambdas):
        budget = math.inf if lam <= 0 else float(spend[:, l].mean()) * SAME_PRICE  # λ = 0: price is no object
        s_right, s_spend = (a[rows] for a in static_out_of_fold(table, folds, budget))
        diff = right[:, l].astype(float) - s_right
        gain = float(diff.mean())
        stderr = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        subset = table.members[_at_budget(cost, accuracy, budget)]
        points.append(OperatingPoint(
            float(lam), bool(gain > 0 and gain > z * stderr), tuple(subset), round(float(right[:, l].mean()), 6),
            float(spend[:, l].mean()), round(float(s_right.mean()), 6), float(s_spend.mean()), round(gain, 6), round(stderr, 6)))
    return points


def _at_budget(cost: np.ndarray, accuracy: np.ndarray, budget: float) -> int:
    """The most accurate point at no more than `budget` (ties: the cheaper); the cheapest if none."""
    best = front_index(cost, accuracy)
    within = [i for i in best if cost[i] <= budget * (1 + 1e-9)]
    return within[-1] if within else best[0]
