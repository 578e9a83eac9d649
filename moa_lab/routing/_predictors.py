"""Per-proposer success predictors on the query embedding: kNN, logistic regression, an MLP and a
shared factor model. Each kind gives out-of-fold raw scores (for choosing and calibrating it) and a
refit on every row, exported as plain arrays the numpy-only selector reads.

Labels are 0/1 successes, or graded qualities in [0, 1] (judge verdicts): every model then minimises
the same cross-entropy with the grade as a soft label (`fit_labels`), and predicts expected quality."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from moa_lab.selection import knn_success, mlp_logits, sigmoid

if TYPE_CHECKING:
    from moa_lab.routing._train import TrainConfig

KINDS = ("knn", "logistic", "mlp", "mf")
Folds = list[tuple[np.ndarray, np.ndarray]]
"""Cross-validation folds: (training rows, validation rows) pairs, each sorted."""
KNN_KS = (10, 25, 50)


@dataclass
class Candidate:
    """Out-of-fold raw scores of one predictor kind for every proposer, and how to refit it."""

    raw: np.ndarray
    fit: Callable[[np.ndarray, np.ndarray, list[int]], dict[str, np.ndarray]]
    extra: dict[str, Any] = field(default_factory=dict)


def _knn_candidate(x: np.ndarray, y: np.ndarray, folds: Folds, config: TrainConfig) -> Candidate:
    raws = {k: np.zeros_like(y) for k in KNN_KS}
    for train, val in folds:
        for k in KNN_KS:
            raws[k][val] = knn_success(x[val], x[train], y[train], k)
    # one k for the pool: the one whose raw scores rank outcomes best on average
    k = min(KNN_KS, key=lambda kk: np.mean([_platt_loss(raws[kk][:, j], y[:, j]) for j in range(y.shape[1])]))

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        return {"knn_x": x_all.astype(np.float32), "knn_y": y_all.astype(np.float32)}

    return Candidate(raws[k], fit, {"k": k})


def _logistic_candidate(x: np.ndarray, y: np.ndarray, folds: Folds, config: TrainConfig) -> Candidate:
    from sklearn.linear_model import LogisticRegression

    def model() -> Any:
        return LogisticRegression(C=1.0, max_iter=300)

    raw = _per_proposer_oof(x, y, folds, model, lambda est, xv: est.decision_function(xv))

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        w = np.zeros((x_all.shape[1], y_all.shape[1]))
        b = np.zeros(y_all.shape[1])
        for j in users:
            known = ~np.isnan(y_all[:, j])
            est = fit_labels(model(), x_all[known], y_all[known, j])
            w[:, j], b[j] = est.coef_[0], est.intercept_[0]
        return {"lr_w": w.astype(np.float32), "lr_b": b.astype(np.float32)}

    return Candidate(raw, fit)


def _mlp_candidate(x: np.ndarray, y: np.ndarray, folds: Folds, config: TrainConfig) -> Candidate:
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
                est = fit_labels(model(), x_all[known], y_all[known, j])
            out |= {f"mlp{j}_w1": est.coefs_[0], f"mlp{j}_b1": est.intercepts_[0],
                    f"mlp{j}_w2": est.coefs_[1], f"mlp{j}_b2": est.intercepts_[1]}
        return {k: v.astype(np.float32) for k, v in out.items()}

    return Candidate(raw, fit)


def _mf_candidate(x: np.ndarray, y: np.ndarray, folds: Folds, config: TrainConfig) -> Candidate | None:
    """A factor model over (query, proposer): query factors from the embedding through one shared
    hidden layer, one output per proposer (a multi-label MLP; for graded labels a multi-output
    regression MLP, whose outputs Platt scaling then calibrates like logits). Needs every cell known."""
    if np.isnan(y).any():
        return None
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    graded = not is_binary(y)

    def model() -> Any:
        kind = MLPRegressor if graded else MLPClassifier
        return kind(hidden_layer_sizes=(config.hidden,), alpha=1e-2, solver="lbfgs", max_iter=300, random_state=config.seed)

    def targets(labels: np.ndarray) -> np.ndarray:
        return labels if graded else labels.astype(int)

    raw = np.zeros_like(y)
    for train, val in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = model().fit(x[train], targets(y[train]))
        raw[val] = _mlp_logits(est, x[val])

    def fit(x_all: np.ndarray, y_all: np.ndarray, users: list[int]) -> dict[str, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = model().fit(x_all, targets(y_all))
        return {"mf_w1": est.coefs_[0].astype(np.float32), "mf_b1": est.intercepts_[0].astype(np.float32),
                "mf_w2": est.coefs_[1].astype(np.float32), "mf_b2": est.intercepts_[1].astype(np.float32)}

    return Candidate(raw, fit)


CANDIDATES: dict[str, Callable[..., Candidate | None]] = {
    "knn": _knn_candidate, "logistic": _logistic_candidate, "mlp": _mlp_candidate, "mf": _mf_candidate,
}


def _per_proposer_oof(x: np.ndarray, y: np.ndarray, folds: Folds, model: Callable[[], Any],
                      score: Callable[[Any, np.ndarray], np.ndarray]) -> np.ndarray:
    raw = np.zeros_like(y)
    for j in range(y.shape[1]):
        for all_train, val in folds:
            train = all_train[~np.isnan(y[all_train, j])]
            labels = y[train, j]
            if labels.min() == labels.max():  # one class in this fold: nothing to separate
                raw[val, j] = 0.0
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = fit_labels(model(), x[train], labels)
            raw[val, j] = score(est, x[val])
    return raw


def _mlp_logits(est: Any, x: np.ndarray) -> np.ndarray:
    out = mlp_logits(x, est.coefs_[0], est.intercepts_[0], est.coefs_[1], est.intercepts_[1])
    return out.ravel() if out.shape[1] == 1 else out


# -- labels and calibration ----------------------------------------------------------------------------


def is_binary(y: np.ndarray) -> bool:
    """Whether every known label is 0 or 1."""
    known = y[~np.isnan(y)]
    return bool(np.all((known == 0) | (known == 1)))


def fit_labels(estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Fit a scikit-learn classifier to labels in [0, 1]. 0/1 labels are fitted as they are; graded
    ones as two copies of the rows, labelled 1 with weight y and 0 with weight 1 − y, whose weighted
    log loss is the cross-entropy against y itself."""
    if is_binary(y):
        return estimator.fit(x, y)
    n = len(y)
    weight = np.concatenate([y, 1.0 - y])
    keep = weight > 0
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    return estimator.fit(np.vstack([x, x])[keep], labels[keep], sample_weight=weight[keep])



def platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the (a, b) of sigmoid(a * raw + b) that fit the labels best."""
    from sklearn.linear_model import LogisticRegression

    if raw.std() < 1e-9:
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        return 0.0, float(np.log(rate / (1 - rate)))
    est = fit_labels(LogisticRegression(C=1e4, max_iter=200), raw[:, None], y)
    return float(est.coef_[0, 0]), float(est.intercept_[0])


def _platt_loss(raw: np.ndarray, y: np.ndarray) -> float:
    known = ~np.isnan(y)
    yk = y[known]
    if yk.min() == yk.max():
        return 0.0
    a, b = platt(raw[known], yk)
    return log_loss(yk, sigmoid(a * raw[known] + b))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean log loss of P(success) `p` against 0/1 labels `y` (cross-entropy against graded labels),
    with `p` clipped to [1e-6, 1 - 1e-6]: one confidently wrong prediction costs at most 13.8, so a
    kind is not chosen or discarded on a single row. NaN without labels (a proposer never called on
    the training rows)."""
    from sklearn.metrics import log_loss as sklearn_log_loss

    if len(y) == 0:
        return float("nan")
    p = np.clip(p, 1e-6, 1 - 1e-6)
    if not is_binary(y):
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(sklearn_log_loss(y, p, labels=[0.0, 1.0]))
