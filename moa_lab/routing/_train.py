"""Training a router: per-proposer success models chosen by cross-validation and calibrated, a cost
model from history, and the aggregator's subset rule fitted on out-of-fold predictions."""

from __future__ import annotations

import difflib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.embedding import Embedder
from moa_lab.routing._data import RoutingData
from moa_lab.routing._subsets import library, measured_subsets
from moa_lab.selection import Router, vote_static
from moa_lab.selection._router import AGGREGATORS, _knn

KINDS = ("knn", "logistic", "mlp", "mf")
KNN_KS = (10, 25, 50)
CLASSES = (1, 2, 3, 4)
LIBRARY_KS = (25, 50, 100, 200)
LIBRARY_SHRINK = (0.0, 5.0, 20.0, 80.0, 1e9)


@dataclass
class TrainConfig:
    """How a router is trained. `lam`, `k` and `max_usd` are the defaults its selector starts with."""

    aggregator: str = "vote"
    kinds: Sequence[str] = KINDS
    folds: int = 5
    seed: int = 0
    hidden: int = 32
    lam: float = 0.0
    k: int | None = None
    max_usd: float | None = None
    diversity_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ConfigError(f"router aggregator must be one of {', '.join(AGGREGATORS)}, not {self.aggregator!r}"
                              + _did_you_mean(self.aggregator, AGGREGATORS))
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ConfigError(f"unknown predictor kind {unknown[0]!r} (known: {', '.join(KINDS)})" + _did_you_mean(unknown[0], KINDS))


@dataclass
class Candidate:
    """Out-of-fold raw scores of one predictor kind for every proposer, and how to refit it."""

    raw: np.ndarray
    fit: Callable[[np.ndarray, np.ndarray, list[int]], dict[str, np.ndarray]]
    extra: dict[str, Any] = field(default_factory=dict)


def train_router(data: RoutingData, x: np.ndarray, embedder: Embedder, embedder_spec: dict[str, Any],
                 config: TrainConfig | None = None) -> Router:
    """Fit a router on every row of `data` (with query embeddings `x`)."""
    config = config or TrainConfig()
    start = time.perf_counter()
    y = data.success
    if len(data.ids) < config.folds * 2:
        raise ConfigError(f"{len(data.ids)} queries are too few to train a router with {config.folds}-fold cross-validation")
    folds = _folds(len(data.ids), config.folds, config.seed)
    import sklearn.linear_model  # noqa: F401  (load scipy's BLAS before limiting it, so even the first
    import sklearn.neural_network  # noqa: F401  fit is single-threaded and the result reproducible)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads cost more than they save (10-40x here)
        return _train(data, x, y, folds, embedder, embedder_spec, config, start)


def _train(data: RoutingData, x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], embedder: Embedder,
           embedder_spec: dict[str, Any], config: TrainConfig, start: float) -> Router:
    candidates = {kind: _CANDIDATES[kind](x, y, folds, config) for kind in config.kinds}
    candidates = {k: c for k, c in candidates.items() if c is not None}
    chosen, platt, oof, cv = _choose(candidates, y)
    arrays: dict[str, np.ndarray] = {"platt": platt}
    for kind, cand in candidates.items():
        users = [j for j, c in enumerate(chosen) if c == kind]
        if users:
            arrays |= cand.fit(x, y, users)
    arrays["cost"] = _cost_model(data)
    arrays["diversity"] = _diversity(y)
    meta: dict[str, Any] = {
        "aggregator": config.aggregator,
        "embedder": {"id": embedder.id, "dim": embedder.dim, "spec": embedder_spec},
        "proposers": data.proposers,
        "names": data.names,
        "predictors": [{"kind": c, "cv_log_loss": loss} for c, loss in zip(chosen, cv)],
        "knn_k": candidates["knn"].extra["k"] if "knn" in candidates else KNN_KS[0],
        "diversity_weight": config.diversity_weight,
        "defaults": {"lam": config.lam, "k": config.k, "max_usd": config.max_usd},
        "training": {
            "source": data.source, "hash": data.fingerprint(), "queries": len(data.ids), "folds": config.folds,
            "seed": config.seed, "kinds": list(config.kinds),
        },
    }
    router = Router(meta, arrays)
    if config.aggregator == "vote":
        _fit_vote_rule(router, data, oof, config.seed)
        _fit_library(router, data, x, folds)
    meta["training"]["seconds"] = round(time.perf_counter() - start, 2)
    return router


def _choose(candidates: dict[str, Candidate], y: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, float]]]:
    """Per proposer, the kind with the lowest out-of-fold log loss after Platt scaling (the constant
    base rate unless a model beats it): chosen kinds, Platt (a, b), calibrated out-of-fold
    predictions, and every kind's loss."""
    m = y.shape[1]
    chosen: list[str] = []
    platt = np.zeros((m, 2))
    oof = np.zeros_like(y)
    cv: list[dict[str, float]] = []
    for j in range(m):
        known = ~np.isnan(y[:, j])
        yj = y[known, j]
        rate = float(np.clip(yj.mean() if len(yj) else 0.5, 1e-3, 1 - 1e-3))
        losses = {"constant": _log_loss(yj, np.full(len(yj), rate))}
        fits = {"constant": (0.0, float(np.log(rate / (1 - rate))))}
        if 0 < yj.sum() < len(yj):
            for kind, cand in candidates.items():
                a, b = _platt(cand.raw[known, j], yj)
                losses[kind] = _log_loss(yj, _sigmoid(a * cand.raw[known, j] + b))
                fits[kind] = (a, b)
        best = min(losses, key=losses.__getitem__)
        chosen.append(best)
        platt[j] = fits[best]
        raw_j = candidates[best].raw[:, j] if best != "constant" else np.zeros(len(y))
        oof[:, j] = _sigmoid(platt[j, 0] * raw_j + platt[j, 1])
        cv.append({k: round(v, 5) for k, v in losses.items()})
    return chosen, platt, oof, cv


# -- predictor kinds: out-of-fold raw scores, then a refit on all rows for the proposers that chose it --


def _knn_candidate(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], config: TrainConfig) -> Candidate:
    raws = {k: np.zeros_like(y) for k in KNN_KS}
    for val in folds:
        train = np.setdiff1d(np.arange(len(y)), val)
        for k in KNN_KS:
            raws[k][val] = _knn(x[val], x[train], y[train], k)
    # one k for the pool: the one whose raw scores rank outcomes best on average
    k = min(KNN_KS, key=lambda kk: np.mean([_platt_loss(raws[kk][:, j], y[:, j]) for j in range(y.shape[1])]))

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        return {"knn_x": x_all.astype(np.float32), "knn_y": y_all.astype(np.float32)}

    return Candidate(raws[k], fit, {"k": k})


def _logistic_candidate(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], config: TrainConfig) -> Candidate:
    from sklearn.linear_model import LogisticRegression

    def model() -> Any:
        return LogisticRegression(C=1.0, max_iter=300)

    raw = _per_proposer_oof(x, y, folds, model, lambda est, xv: est.decision_function(xv))

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        w = np.zeros((x_all.shape[1], y_all.shape[1]))
        b = np.zeros(y_all.shape[1])
        for j in users:
            known = ~np.isnan(y_all[:, j])
            est = model().fit(x_all[known], y_all[known, j])
            w[:, j], b[j] = est.coef_[0], est.intercept_[0]
        return {"lr_w": w.astype(np.float32), "lr_b": b.astype(np.float32)}

    return Candidate(raw, fit)


def _mlp_candidate(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], config: TrainConfig) -> Candidate:
    from sklearn.neural_network import MLPClassifier

    def model() -> Any:
        return MLPClassifier((config.hidden,), alpha=1e-2, solver="lbfgs", max_iter=200, random_state=config.seed)

    raw = _per_proposer_oof(x, y, folds, model, lambda est, xv: _mlp_logits(est, xv))

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        out = {}
        for j in users:
            known = ~np.isnan(y_all[:, j])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = model().fit(x_all[known], y_all[known, j])
            out |= {f"mlp{j}_w1": est.coefs_[0], f"mlp{j}_b1": est.intercepts_[0],
                    f"mlp{j}_w2": est.coefs_[1], f"mlp{j}_b2": est.intercepts_[1]}
        return {k: v.astype(np.float32) for k, v in out.items()}

    return Candidate(raw, fit)


def _mf_candidate(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], config: TrainConfig) -> Candidate | None:
    """A factor model over (query, proposer): query factors from the embedding through one shared
    hidden layer, one output per proposer (a multi-label MLP). Needs every cell known."""
    if np.isnan(y).any():
        return None
    from sklearn.neural_network import MLPClassifier

    def model() -> Any:
        return MLPClassifier((config.hidden,), alpha=1e-2, solver="lbfgs", max_iter=300, random_state=config.seed)

    raw = np.zeros_like(y)
    for val in folds:
        train = np.setdiff1d(np.arange(len(y)), val)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = model().fit(x[train], y[train].astype(int))
        raw[val] = _mlp_logits(est, x[val])

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = model().fit(x_all, y_all.astype(int))
        return {"mf_w1": est.coefs_[0].astype(np.float32), "mf_b1": est.intercepts_[0].astype(np.float32),
                "mf_w2": est.coefs_[1].astype(np.float32), "mf_b2": est.intercepts_[1].astype(np.float32)}

    return Candidate(raw, fit)


_CANDIDATES: dict[str, Callable[..., Candidate | None]] = {
    "knn": _knn_candidate, "logistic": _logistic_candidate, "mlp": _mlp_candidate, "mf": _mf_candidate,
}


def _per_proposer_oof(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], model: Callable[[], Any],
                      score: Callable[[Any, np.ndarray], np.ndarray]) -> np.ndarray:
    raw = np.zeros_like(y)
    for j in range(y.shape[1]):
        for val in folds:
            train = np.setdiff1d(np.arange(len(y)), val)
            train = train[~np.isnan(y[train, j])]
            labels = y[train, j]
            if labels.min() == labels.max():  # one class in this fold: nothing to separate
                raw[val, j] = 0.0
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = model().fit(x[train], labels)
            raw[val, j] = score(est, x[val])
    return raw


def _mlp_logits(est: Any, x: np.ndarray) -> np.ndarray:
    hidden = np.maximum(x @ est.coefs_[0] + est.intercepts_[0], 0.0)
    out = hidden @ est.coefs_[1] + est.intercepts_[1]
    return out.ravel() if out.shape[1] == 1 else out


# -- calibration, cost, diversity, vote rule -------------------------------------------------------------


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the (a, b) of sigmoid(a * raw + b) that fit the labels best."""
    from sklearn.linear_model import LogisticRegression

    if raw.std() < 1e-9:
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        return 0.0, float(np.log(rate / (1 - rate)))
    est = LogisticRegression(C=1e4, max_iter=200).fit(raw[:, None], y)
    return float(est.coef_[0, 0]), float(est.intercept_[0])


def _platt_loss(raw: np.ndarray, y: np.ndarray) -> float:
    known = ~np.isnan(y)
    yk = y[known]
    if yk.min() == yk.max():
        return 0.0
    a, b = _platt(raw[known], yk)
    return _log_loss(yk, _sigmoid(a * raw[known] + b))


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


def _fit_vote_rule(router: Router, data: RoutingData, oof: np.ndarray, seed: int, samples: int = 4000) -> None:
    """Choose the vote rule's error model on the training rows: how many latent difficulty classes
    (1 = proposers err independently) and the weight of "wrong answers differ", by the Brier score of
    predicted against replayed outcomes of random subsets, from out-of-fold success predictions."""
    rng = np.random.default_rng(seed)
    m = len(data.proposers)
    rows = rng.integers(0, len(data.ids), samples)
    sizes = rng.integers(1, min(m, 9) + 1, samples)
    outcome = np.zeros(samples)
    members = np.full((samples, min(m, 9)), -1)
    success = data.success
    for s in range(samples):
        subset = sorted(rng.choice(m, sizes[s], replace=False), key=lambda j: -oof[rows[s], j])
        outcome[s] = vote_static(data.answers[rows[s]:rows[s] + 1], success[rows[s]:rows[s] + 1], subset)[0]
        members[s, :len(subset)] = subset
    valid = members >= 0
    probs = np.where(valid, oof[rows[:, None], np.where(valid, members, 0)], 0.0)
    best: tuple[float, int, float] = (np.inf, 1, 0.5)
    fits = {}
    for classes in CLASSES:
        fits[classes] = _latent_classes(data.success, classes, seed) if classes > 1 else None
        if fits[classes] is None:
            router.arrays.pop("class_weight", None)
            router.arrays.pop("class_shift", None)
        else:
            router.arrays["class_weight"], router.arrays["class_shift"] = fits[classes]
        for mix in np.linspace(0, 1, 11):
            router.meta["vote_mix"] = float(mix)
            brier = float(np.mean((router.vote(probs, valid, members) - outcome) ** 2))
            if brier < best[0] - 1e-9:
                best = (brier, classes, float(mix))
    brier, classes, mix = best
    router.meta |= {"vote_mix": round(mix, 2), "vote_classes": classes, "vote_brier": round(brier, 5)}
    router.arrays.pop("class_weight", None)
    router.arrays.pop("class_shift", None)
    if fits[classes] is not None:
        router.arrays["class_weight"], router.arrays["class_shift"] = fits[classes]


def _fit_library(router: Router, data: RoutingData, x: np.ndarray, folds: list[np.ndarray]) -> None:
    """Measure a library of subsets on the training rows and choose, by cross-validated Brier score,
    how many nearest queries judge a subset and how hard that judgment shrinks to its overall accuracy."""
    subsets = library(measured_subsets(data))
    outcome = np.stack([vote_static(data.answers, data.success, s) for s in subsets], axis=1).astype(np.float32)
    errors = {(k, a): 0.0 for k in LIBRARY_KS for a in LIBRARY_SHRINK}
    for val in folds:
        train = np.setdiff1d(np.arange(len(x)), val)
        sims = x[val] @ x[train].T
        overall = outcome[train].mean(axis=0)
        for k in LIBRARY_KS:
            k_ = min(k, len(train))
            nearest = np.argpartition(-sims, k_ - 1, axis=1)[:, :k_]
            w = np.maximum(np.take_along_axis(sims, nearest, axis=1), 0.0) + 1e-6
            num = np.einsum("nk,nkf->nf", w, outcome[train][nearest])
            for a in LIBRARY_SHRINK:
                estimate = (num + a * overall) / (w.sum(axis=1, keepdims=True) + a)
                errors[(k, a)] += float(((estimate - outcome[val]) ** 2).sum())
    k, shrink = min(errors, key=errors.__getitem__)
    width = max(len(s) for s in subsets)
    router.arrays |= {
        "knn_x": x.astype(np.float32),
        "lib_members": np.array([s + [-1] * (width - len(s)) for s in subsets], np.int16),
        "lib_outcome": outcome,
        "lib_global": outcome.mean(axis=0),
        "train_answers": data.answers.astype(np.int16),
        "train_success": data.success.astype(np.float32),
    }
    router.meta |= {"lib_k": k, "lib_shrink": shrink, "lib_size": len(subsets),
                    "lib_brier": round(errors[(k, shrink)] / outcome.size, 5)}


def _latent_classes(y: np.ndarray, classes: int, seed: int, iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A latent class model of who gets which query right (EM; missing cells skipped): class weights,
    and per class the shift of each proposer's success log-odds from its overall rate."""
    rng = np.random.default_rng(seed)
    known = ~np.isnan(y)
    right = np.nan_to_num(y)
    rate = np.clip(right.sum(0) / np.maximum(known.sum(0), 1), 1e-3, 1 - 1e-3)
    resp = rng.dirichlet(np.ones(classes), len(y))
    for _ in range(iterations):
        weight = resp.mean(0)
        theta = np.clip((resp.T @ right + 1) / (resp.T @ known + 2), 1e-3, 1 - 1e-3)  # (classes, proposers)
        log_like = right @ np.log(theta).T + (known * (1 - right)) @ np.log(1 - theta).T + np.log(weight)
        log_like -= log_like.max(axis=1, keepdims=True)
        new = np.exp(log_like)
        new /= new.sum(axis=1, keepdims=True)
        if np.abs(new - resp).max() < 1e-6:
            break
        resp = new
    shift = np.log(theta / (1 - theta)) - np.log(rate / (1 - rate))
    return weight.astype(np.float32), shift.astype(np.float32)


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

