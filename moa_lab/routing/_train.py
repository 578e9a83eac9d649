"""Training a router: per-proposer success models chosen by cross-validation and calibrated, a cost
model from history, and the aggregator's subset rule fitted on out-of-fold predictions. A vote
router also learns, per λ, whether routing beats the best static subset (cross-validated), and the
cascades that stop when cheap proposers agree."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.embedding import Embedder
from moa_lab.registry import did_you_mean
from moa_lab.routing._data import RoutingData
from moa_lab.routing._cascade import MAX_STAGES, candidates, front_plans
from moa_lab.routing._operating import CHOICE_LAMBDAS, SAME_PRICE, fit_operating_points, routed_out_of_fold
from moa_lab.routing._diversity import error_similarity
from moa_lab.routing._predictors import CANDIDATES, KINDS, Candidate, Folds, log_loss, platt
from moa_lab.routing._subsets import SubsetTable
from moa_lab.routing._vote_rule import fit_library, fit_vote_rule
from moa_lab.selection import AGGREGATORS, Router, VoteModel, sigmoid


@dataclass
class TrainConfig:
    """How a router is trained. `lam`, `k`, `max_usd` and `diversity` (quality points per nat of
    the chosen proposers' error log-volume, see `SubsetRule`) are the defaults its selector starts with.
    Vote routers: `lambdas` are the λ at which routing is compared with static subsets, kept only
    where its cross-validated gain exceeds `route_z` standard errors; `cascade_stages` (0: none) the
    most stages a learned cascade may have. The routing-or-static comparison routes at most
    `route_rows` training queries (drawn with `seed`) at each λ."""

    aggregator: str = "vote"
    kinds: Sequence[str] = KINDS
    folds: int = 5
    seed: int = 0
    hidden: int = 32
    lam: float = 0.0
    k: int | None = None
    max_usd: float | None = None
    diversity_weight: float = 0.1
    lambdas: Sequence[float] = CHOICE_LAMBDAS
    route_z: float = 1.0
    route_rows: int = 400
    cascade_stages: int = MAX_STAGES
    diversity: float = 0.0

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ConfigError(f"router aggregator must be one of {', '.join(AGGREGATORS)}, not {self.aggregator!r}"
                              + did_you_mean(self.aggregator, AGGREGATORS))
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ConfigError(f"unknown predictor kind {unknown[0]!r} (known: {', '.join(KINDS)})" + did_you_mean(unknown[0], KINDS))
        if self.diversity < 0:
            raise ConfigError(f"diversity must be at least 0 (0 = off), not {self.diversity}")


def train_router(data: RoutingData, x: np.ndarray, embedder: Embedder, embedder_spec: dict[str, Any],
                 config: TrainConfig | None = None, *, provenance: Mapping[str, Any] | None = None) -> Router:
    """Fit a router on every row of `data` (with query embeddings `x`). `provenance` (the split, the
    data arguments, ...) is recorded in the artifact's training metadata beside what training knows."""
    config = config or TrainConfig()
    start = time.perf_counter()
    if len(data.ids) < config.folds * 2:
        raise ConfigError(f"{len(data.ids)} queries are too few to train a router with {config.folds}-fold cross-validation")
    folds = kfold(len(data.ids), config.folds, config.seed)
    import sklearn.linear_model  # noqa: F401  (load scipy's BLAS before limiting it, so even the first
    import sklearn.neural_network  # noqa: F401  fit is single-threaded and the result reproducible)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads cost more than they save (10-40x here)
        meta, arrays = _fit(data, x, folds, config)
    meta["embedder"] = {"id": embedder.id, "dim": embedder.dim, "spec": embedder_spec}
    meta["training"] |= {"seconds": round(time.perf_counter() - start, 2), **(provenance or {})}
    return Router(meta, arrays)


def kfold(n: int, k: int, seed: int) -> Folds:
    """k (training rows, validation rows) folds over n rows, each sorted, from a seeded shuffle.

    The rows are shuffled with numpy's Generator and then cut by an unshuffled KFold, rather than by
    KFold(shuffle=True), whose legacy RandomState would give other folds than the routers trained
    so far were given (and so other routers for the same seed)."""
    from sklearn.model_selection import KFold

    order = np.random.default_rng(seed).permutation(n)
    return [(np.sort(order[train]), np.sort(order[val])) for train, val in KFold(k).split(order)]


def _fit(data: RoutingData, x: np.ndarray, folds: Folds, config: TrainConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every fitted part of the router: its metadata and its arrays."""
    y = data.quality
    candidates = {kind: CANDIDATES[kind](x, y, folds, config) for kind in config.kinds}
    candidates = {k: c for k, c in candidates.items() if c is not None}
    chosen, calibration, oof, cv = _choose(candidates, y)
    arrays: dict[str, np.ndarray] = {"platt": calibration}
    for kind, cand in candidates.items():
        users = [j for j, c in enumerate(chosen) if c == kind]
        if users:
            arrays |= cand.fit(x, y, users)
    arrays["cost"] = _cost_model(data)
    arrays["diversity"] = _diversity(y)
    arrays["error_similarity"] = error_similarity(data)
    meta: dict[str, Any] = {
        "aggregator": config.aggregator,
        "proposers": data.proposers,
        "names": data.names,
        "predictors": [{"kind": c, "cv_log_loss": loss} for c, loss in zip(chosen, cv)],
        "knn_k": candidates["knn"].extra["k"] if "knn" in candidates else 0,
        "diversity_weight": config.diversity_weight,
        "defaults": {"lam": config.lam, "k": config.k, "max_usd": config.max_usd, "diversity": config.diversity},
        "training": {
            "source": data.source, "hash": data.fingerprint(), "queries": len(data.ids), "folds": config.folds,
            "seed": config.seed, "kinds": list(config.kinds),
        },
    }
    if config.aggregator == "vote":
        table = SubsetTable.measure(data)
        for part in (fit_vote_rule(data, oof, config.seed), fit_library(data, x, folds, table)):
            meta |= part.meta
            arrays |= part.arrays
        meta |= _static_or_routed(data, x, folds, oof, meta, arrays, table, config)
        if config.cascade_stages > 0:
            meta["cascade"] = _cascades(data, table, config)
    return meta, arrays


def _static_or_routed(data: RoutingData, x: np.ndarray, folds: Folds, oof: np.ndarray, meta: dict[str, Any],
                      arrays: dict[str, np.ndarray], table: SubsetTable, config: TrainConfig) -> dict[str, Any]:
    """The `operating` entry: per λ, routing or the best static subset (see `fit_operating_points`)."""
    start = time.perf_counter()
    model = VoteModel(float(meta["vote_mix"]), arrays.get("class_weight"), arrays.get("class_shift"))
    lengths = np.array([len(q) for q in data.queries], float)
    usd = np.maximum(arrays["cost"][:, 0] + np.outer(lengths, arrays["cost"][:, 1]), 0.0)
    n = len(data.ids)
    rows = np.sort(np.random.default_rng(config.seed).permutation(n)[:config.route_rows]) if n > config.route_rows else None
    right, spend = routed_out_of_fold(data, x, folds, oof, usd, model, table, int(meta["lib_k"]), float(meta["lib_shrink"]),
                                      config.lambdas, rows)
    points = fit_operating_points(table, folds, right, spend, config.lambdas, config.route_z, rows)
    cost, accuracy = table.cost(), table.accuracy()
    front = [{"subset": table.members[s], "usd": float(cost[s]), "accuracy": round(float(accuracy[s]), 6)}
             for s in table.front()]
    return {"operating": {"z": config.route_z, "rows": n if rows is None else len(rows), "same_price": SAME_PRICE, "seconds": round(time.perf_counter() - start, 2),
                          "points": [p.to_dict() for p in points], "front": front}}


def _cascades(data: RoutingData, table: SubsetTable, config: TrainConfig) -> dict[str, Any]:
    """The `cascade` entry: the plans no cheaper plan matches on the training split, and per λ the
    plan with the best training accuracy − λ × $."""
    start = time.perf_counter()
    found = candidates(data, table, max_stages=config.cascade_stages)
    plans = front_plans(found, table)
    usd = np.array([p.usd for p in plans])
    accuracy = np.array([p.accuracy for p in plans])
    by_lambda = [{"lam": float(lam), "plan": int(np.argmax(accuracy - lam * usd))} for lam in config.lambdas]
    return {"measure": "vote-margin", "candidates": len(found.accuracy), "seconds": round(time.perf_counter() - start, 2),
            "plans": [p.to_dict() for p in plans], "by_lambda": by_lambda}


def _choose(candidates: dict[str, Candidate], y: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, float]]]:
    """Per proposer, the kind with the lowest out-of-fold log loss after Platt scaling (the constant
    base rate unless a model beats it): chosen kinds, Platt (a, b), calibrated out-of-fold
    predictions, and every kind's loss."""
    m = y.shape[1]
    chosen: list[str] = []
    calibration = np.zeros((m, 2))
    oof = np.zeros_like(y)
    cv: list[dict[str, float]] = []
    for j in range(m):
        known = ~np.isnan(y[:, j])
        yj = y[known, j]
        rate = float(np.clip(yj.mean() if len(yj) else 0.5, 1e-3, 1 - 1e-3))
        losses = {"constant": log_loss(yj, np.full(len(yj), rate))}
        fits = {"constant": (0.0, float(np.log(rate / (1 - rate))))}
        if 0 < yj.sum() < len(yj):
            for kind, cand in candidates.items():
                a, b = platt(cand.raw[known, j], yj)
                losses[kind] = log_loss(yj, sigmoid(a * cand.raw[known, j] + b))
                fits[kind] = (a, b)
        best = min(losses, key=losses.__getitem__)
        chosen.append(best)
        calibration[j] = fits[best]
        raw_j = candidates[best].raw[:, j] if best != "constant" else np.zeros(len(y))
        oof[:, j] = sigmoid(calibration[j, 0] * raw_j + calibration[j, 1])
        cv.append({k: round(v, 5) for k, v in losses.items()})
    return chosen, calibration, oof, cv


# -- cost and diversity ----------------------------------------------------------------------------------


def _cost_model(data: RoutingData) -> np.ndarray:
    """Per proposer, $ = a + b × query characters, least squares over its recorded calls."""
    lengths = np.array([len(q) for q in data.queries], float)
    out = np.zeros((len(data.proposers), 2))
    for j in range(len(data.proposers)):
        known = ~np.isnan(data.cost[:, j])
        if known.sum() >= 2 and lengths[known].std() > 0:
            slope, intercept = np.polyfit(lengths[known], data.cost[known, j], 1)
            out[j] = intercept, slope
        elif known.any():
            out[j] = data.cost[known, j].mean(), 0.0
    return out


def _diversity(y: np.ndarray) -> np.ndarray:
    """Pairwise share of queries where exactly one of two proposers succeeds (their errors differ)."""
    known = ~np.isnan(y)
    right = np.nan_to_num(y)
    wrong = known * (1 - right)
    both = known.T.astype(float) @ known.astype(float)
    differ = right.T @ wrong + wrong.T @ right
    return (differ / np.maximum(both, 1)).astype(np.float32)
