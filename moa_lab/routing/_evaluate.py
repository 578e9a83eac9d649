"""Held-out evaluation of a router against static baselines, all replayed on the same test queries.

Every method is a set of points (accuracy, $ per query, calls per query); a method with a knob (the
router's λ, a k) is a curve. A curve's area is its mean accuracy over log10($ per query) between the
cheapest single proposer and calling every proposer, reading the curve as "the best accuracy reachable
at this price or less" (0 below its cheapest point), so areas compare like for like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.routing._cascade import replay
from moa_lab.routing._data import RoutingData
from moa_lab.routing._operating import LAMBDAS
from moa_lab.routing._subsets import front, measured_subsets
from moa_lab.selection import Router, vote_routed, vote_static



@dataclass
class Point:
    """One configuration measured on the test split."""

    method: str
    label: str
    accuracy: float
    usd: float
    calls: float


@dataclass
class RouterEval:
    """Every method's points on the test split, their curve areas and the targets' verdicts."""

    test_queries: int
    train_queries: int
    points: list[Point]
    area: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)

    def curve(self, method: str) -> list[Point]:
        return sorted((p for p in self.points if p.method == method), key=lambda p: p.usd)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(p.method for p in self.points))

    def to_dict(self) -> dict[str, Any]:
        return {"test_queries": self.test_queries, "train_queries": self.train_queries,
                "points": [asdict(p) for p in self.points], "area": self.area, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouterEval:
        """Read what `to_dict` wrote (an eval.json)."""
        return cls(int(data["test_queries"]), int(data["train_queries"]), [Point(**p) for p in data["points"]],
                   dict(data["area"]), dict(data.get("summary", {})))


def evaluate_router(router: Router, data: RoutingData, x: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                    lambdas: Sequence[float] = LAMBDAS, k: int | None = None, seed: int = 0,
                    diagnostics: bool = True) -> RouterEval:
    """Replay the router and every baseline on `test` rows (the router must be trained on `train`).
    `diagnostics`: also routing alone at every λ and the rule fed the true outcomes."""
    if router.aggregator != "vote":
        raise ConfigError(
            f"offline evaluation replays votes over recorded answers; a {router.aggregator!r} aggregator needs "
            "model calls: evaluate it live with `moa-lab eval` and `selector: {kind: learned, path: ...}`"
        )
    order = router.align(data.proposers)
    tr, te = data.rows(train), data.rows(test)
    y_tr, y_te = tr.success, te.success
    accuracy = np.nanmean(y_tr, axis=0)
    mean_cost = np.nanmean(tr.cost, axis=0)
    by_accuracy = [int(j) for j in np.argsort(-accuracy, kind="stable")]
    m = len(data.proposers)
    points: list[Point] = []

    def static(method: str, label: str, subset: Sequence[int]) -> Point:
        subset = sorted(subset, key=lambda j: -accuracy[j])
        point = Point(method, label, float(vote_static(te.answers, y_te, subset).mean()),
                      float(np.nansum(te.cost[:, subset], axis=1).mean()), float(len(subset)))
        points.append(point)
        return point

    def routed(method: str, label: str, subsets: Sequence[Sequence[int]]) -> None:
        points.append(Point(method, label, float(vote_routed(te.answers, y_te, subsets).mean()),
                            float(np.mean([np.nansum(te.cost[i, s]) for i, s in enumerate(subsets)])),
                            float(np.mean([len(s) for s in subsets]))))

    # the router: where it routes, one point per λ; where it calls a static subset, every subset it
    # calls at some λ (a sweep finer than `lambdas`, so no front subset it can reach is skipped);
    # routing alone at every λ; the same rule fed the true outcomes (how far better predictions
    # could take it)
    usd = router.cost(np.array([len(q) for q in te.queries]))
    position = np.argsort(order)  # router index -> data column
    predicted = router.success(x[test])
    true_p = np.nan_to_num(y_te, nan=0.0)[:, position]
    for lam, subset in static_sweep(router, lambdas, k=k).items():
        routed("router", f"λ={lam:g}", [[int(position[j]) for j in subset]] * len(test))
    for lam in lambdas:
        if router.static_subset(lam, k=k) is None:
            routed("router", f"λ={lam:g}", [[int(position[j]) for j in router.choose(predicted[i], usd[i], lam=lam, k=k, x=x[test][i])]
                                             for i in range(len(test))])
        if not diagnostics:
            continue
        if router.operating:  # routing alone, where the router calls a static subset instead
            if router.static_subset(lam, k=k) is None:
                points.append(replace(points[-1], method="routing-only"))
            else:
                routed("routing-only", f"λ={lam:g}", [[int(position[j]) for j in router.rule.choose(predicted[i], usd[i], lam=lam, k=k, x=x[test][i])]
                                                      for i in range(len(test))])
        routed("router-true-p", f"λ={lam:g}", [[int(position[j]) for j in router.rule.choose(true_p[i], usd[i], lam=lam, k=k)]
                                                for i in range(len(test))])
    for plan in router.cascades:
        right, spend, calls = replay(plan.remap(position), te)
        points.append(Point("cascade", plan.label(router.meta["names"]), float(right.mean()), float(spend.mean()),
                            float(calls.mean())))
    best_single = static("best-single", data.names[by_accuracy[0]], by_accuracy[:1])
    static("cheapest", data.names[int(np.argmin(mean_cost))], [int(np.argmin(mean_cost))])
    static("all", f"vote of all {m}", list(range(m)))
    for size in range(1, m + 1):
        static("top-k", f"k={size}", by_accuracy[:size])
    rng = np.random.default_rng(seed)
    for size in range(1, m + 1):
        routed("random-k", f"k={size}", [list(rng.choice(m, size, replace=False)) for _ in range(len(test))])
    for subset in front(measured_subsets(tr)):
        static("static-best", "+".join(data.names[j] for j in subset), subset)
    oracle = _oracle(te)
    points.append(oracle)

    lo = float(np.nanmean(te.cost, axis=0).min())
    hi = float(np.nansum(te.cost, axis=1).mean())
    methods = list(dict.fromkeys(pt.method for pt in points))
    area = {meth: _area([pt for pt in points if pt.method == meth], lo, hi) for meth in methods}
    result = RouterEval(len(test), len(train), points, area)
    result.summary = _targets(result, best_single, oracle)
    result.summary["choices"] = [{"lam": pt.lam, "routes": pt.routes, "static": "+".join(router.meta["names"][j] for j in pt.subset),
                                  "gain": pt.gain, "stderr": pt.stderr} for pt in router.operating]
    result.summary["held_out_auc"] = {data.names[j]: _auc(predicted[:, order[j]], y_te[:, j]) for j in range(m)}
    return result


def static_sweep(router: Router, lambdas: Sequence[float], *, k: int | None = None) -> dict[float, tuple[int, ...]]:
    """Each distinct static subset `router` calls at some λ, at the first λ it does so, over `lambdas`
    and the λ at which its static fallback changes subset (`Router.static_lambdas`). The fallback's
    subset moves with routing's price, which moves continuously with λ, so a grid alone would skip
    front subsets the router does call."""
    found: dict[tuple[int, ...], float] = {}
    for lam in sorted(set(lambdas) | set(router.static_lambdas())):
        subset = router.static_subset(lam, k=k)
        if subset is not None:
            found.setdefault(tuple(subset), lam)
    return {lam: subset for subset, lam in found.items()}


def _auc(score: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the ROC curve; None when the test rows hold one class only."""
    from sklearn.metrics import roc_auc_score

    known = ~np.isnan(y)
    if len(np.unique(y[known])) < 2:
        return None
    return round(float(roc_auc_score(y[known] > 0, score[known])), 4)


def _oracle(te: RoutingData) -> Point:
    """Per query, the cheapest proposer that answers right (the cheapest one when none does)."""
    y = np.nan_to_num(te.success)
    cost = np.where(np.isnan(te.cost), np.inf, te.cost)
    right_cost = np.where(y > 0, cost, np.inf)
    any_right = y.max(axis=1) > 0
    spend = np.where(any_right, right_cost.min(axis=1), cost.min(axis=1))
    return Point("oracle", "cheapest correct proposer", float(any_right.mean()), float(spend.mean()), 1.0)


def _area(points: list[Point], lo: float, hi: float, steps: int = 512) -> float:
    """Mean over log10($) in [lo, hi] of the best accuracy at that price or less."""
    if not points or not 0 < lo < hi:  # no price range to integrate over (free models)
        return float("nan")
    grid = np.logspace(math.log10(lo), math.log10(hi), steps)
    usd = np.array([p.usd for p in points])
    acc = np.array([p.accuracy for p in points])
    best = np.array([acc[usd <= g * (1 + 1e-9)].max(initial=0.0) for g in grid])
    return float(best.mean())


def _targets(result: RouterEval, best_single: Point, oracle: Point) -> dict[str, Any]:
    def cheapest_match(method: str) -> Point | None:
        matching = [p for p in result.curve(method) if p.accuracy >= best_single.accuracy]
        return min(matching, key=lambda p: p.usd) if matching else None

    def ratio(method: str) -> float | None:
        match = cheapest_match(method)
        return match.usd / best_single.usd if match else None

    router = result.curve("router")
    router_match = cheapest_match("router")
    affordable = [p for p in router if p.usd <= best_single.usd]
    best_affordable = max(affordable, key=lambda p: p.accuracy) if affordable else None
    gap = oracle.accuracy - best_single.accuracy
    return {
        "best_single": asdict(best_single),
        "oracle": asdict(oracle),
        "router_matches_best_single_at_usd": router_match.usd if router_match else None,
        "router_cost_ratio_at_best_single_accuracy": ratio("router"),
        "cascade_cost_ratio_at_best_single_accuracy": ratio("cascade"),
        "static_cost_ratio_at_best_single_accuracy": ratio("static-best"),
        "router_best_accuracy_within_best_single_cost": best_affordable.accuracy if best_affordable else None,
        "gap_recovered": ((best_affordable.accuracy - best_single.accuracy) / gap) if best_affordable and gap > 0 else None,
        "area_router": result.area.get("router"),
        "area_cascade": result.area.get("cascade"),
        "area_static_best": result.area.get("static-best"),
    }
