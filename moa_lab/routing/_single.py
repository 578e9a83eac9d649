"""Held-out evaluation of a `single` router (one proposer per query, its answer final) against the
static choices of one proposer, all replayed on the same test queries.

A point's quality is the mean recorded quality of the chosen answers: accuracy for 0/1 scores, the
win rate against the reference for AlpacaEval verdicts (`moa_lab.routing._verdicts`). The static
baseline is every proposer alone; `static-best` is the front of those chosen on the training split
(no cheaper proposer has a higher training mean), measured on the test split, and `best-single` the
proposer with the highest training mean. A curve's area is its mean quality over log10($ per query)
between the cheapest proposer and the dearest proposer of every query (see `_evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np

from moa_lab.core import ConfigError
from moa_lab.routing._data import RoutingData
from moa_lab.routing._evaluate import Point, RouterEval, _area, _auc, _targets
from moa_lab.routing._subsets import front
from moa_lab.selection import Router

LAMBDAS = (0.0, *np.round(np.logspace(-1, 6, 57), 4).tolist())
"""λ values swept for a single router: quality points one dollar is worth, wider and denser than a
vote router's sweep (one answer per query costs from 1e-5 to 1e-1 $ across pools)."""


def evaluate_single(router: Router, data: RoutingData, x: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                    lambdas: Sequence[float] = LAMBDAS) -> RouterEval:
    """Replay the router and every one-proposer baseline on `test` rows (the router must be trained on
    `train`); the summary holds the same targets as a vote router's (`_evaluate._targets`)."""
    if router.aggregator != "single":
        raise ConfigError(f"evaluate_single replays one proposer per query; this router feeds a {router.aggregator!r} aggregator")
    order = router.align(data.proposers)
    position = np.argsort(order)  # router index -> data column
    tr, te = data.rows(train), data.rows(test)
    if np.isnan(te.scores).any() or np.isnan(te.cost).any():
        raise ConfigError(f"{data.source}: the test split has proposers with no recorded answer; "
                          "replaying one proposer per query needs every cell")
    quality, cost = te.scores, te.cost
    rows = np.arange(len(test))
    mean_quality = np.nanmean(tr.scores, axis=0)
    mean_cost = np.nanmean(tr.cost, axis=0)
    points: list[Point] = []

    def routed(method: str, label: str, chosen: np.ndarray) -> None:
        points.append(Point(method, label, float(quality[rows, chosen].mean()), float(cost[rows, chosen].mean()), 1.0))

    def static(method: str, j: int) -> Point:
        point = Point(method, data.names[j], float(quality[:, j].mean()), float(cost[:, j].mean()), 1.0)
        points.append(point)
        return point

    usd = router.cost(np.array([len(q) for q in te.queries]))
    predicted = router.success(x[test])
    true_q = quality[:, order]  # router order
    picks: dict[str, np.ndarray] = {}
    for method, p in (("router", predicted), ("router-true-p", true_q)):
        for lam in lambdas:
            chosen = np.array([position[router.choose(p[i], usd[i], lam=lam)[0]] for i in rows])
            routed(method, f"λ={lam:g}", chosen)
            if method == "router":
                picks[points[-1].label] = chosen
    best_single = static("best-single", int(np.argmax(mean_quality)))
    static("cheapest", int(np.argmin(mean_cost)))
    for subset in front([(float(mean_cost[j]), float(mean_quality[j]), [j]) for j in range(len(data.names))]):
        static("static-best", subset[0])
    best = quality.max(axis=1, keepdims=True)
    oracle_choice = np.argmin(np.where(quality >= best, cost, np.inf), axis=1)  # the cheapest of the best
    oracle = Point("oracle", "best proposer per query", float(best.mean()),
                   float(cost[rows, oracle_choice].mean()), 1.0)
    points.append(oracle)

    lo, hi = float(cost.mean(axis=0).min()), float(cost.max(axis=1).mean())
    methods = list(dict.fromkeys(pt.method for pt in points))
    result = RouterEval(len(test), len(train), points, {m: _area([p for p in points if p.method == m], lo, hi) for m in methods})
    result.summary = _targets(result, best_single, oracle)
    result.summary["quality"] = "win rate against the reference" if data.graded else "accuracy"
    result.summary["area_range_usd"] = [lo, hi]
    result.summary["held_out_auc"] = {data.names[j]: _auc(predicted[:, order[j]], te.success[:, j]) for j in range(len(data.names))}
    result.summary["router_choices_at_best_single_quality"] = _choices(result, data, picks)
    return result


def _choices(result: RouterEval, data: RoutingData, picks: dict[str, np.ndarray]) -> dict[str, int] | None:
    """How many test queries each proposer gets at the cheapest λ matching the best single's quality."""
    target = result.summary["best_single"]["accuracy"]
    matching = [p for p in result.curve("router") if p.accuracy >= target]
    if not matching:
        return None
    names, counts = np.unique(picks[min(matching, key=lambda p: p.usd).label], return_counts=True)
    return {data.names[int(j)]: int(n) for n, j in sorted(zip(counts, names), reverse=True)}
