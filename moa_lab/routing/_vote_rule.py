"""The vote rule's parts fitted on training rows: the error model of the vote (latent difficulty
classes and the "wrong answers differ" mix) and the library of measured subsets that each query's
nearest training queries judge. Each fit returns its parameters; the router is built from them once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moa_lab.routing._data import RoutingData
from moa_lab.routing._predictors import Folds
from moa_lab.routing._subsets import SubsetTable, library
from moa_lab.selection import VoteModel, nearest, vote_static

CLASSES = (1, 2, 3, 4)
LIBRARY_KS = (25, 50, 100, 200)
LIBRARY_SHRINK = (0.0, 5.0, 20.0, 80.0, 1e9)


@dataclass(frozen=True)
class Fitted:
    """Fitted parameters of one part of a router: entries of router.json and arrays of arrays.npz."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def fit_vote_rule(data: RoutingData, oof: np.ndarray, seed: int, samples: int = 4000) -> Fitted:
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
    fits = {c: _latent_classes(data.success, c, seed) if c > 1 else (None, None) for c in CLASSES}
    for classes, (weight, shift) in fits.items():
        for mix in np.linspace(0, 1, 11):
            predicted = VoteModel(float(mix), weight, shift).quality(probs, valid, members)
            brier = float(np.mean((predicted - outcome) ** 2))
            if brier < best[0] - 1e-9:
                best = (brier, classes, float(mix))
    brier, classes, mix = best
    weight, shift = fits[classes]
    arrays = {} if weight is None or shift is None else {"class_weight": weight, "class_shift": shift}
    return Fitted({"vote_mix": round(mix, 2), "vote_classes": classes, "vote_brier": round(brier, 5)}, arrays)


def fit_library(data: RoutingData, x: np.ndarray, folds: Folds, table: SubsetTable) -> Fitted:
    """Take a library of subsets from those `table` measured on the training rows and choose, by
    cross-validated Brier score, how many nearest queries judge a subset and how hard that judgment
    shrinks to its overall accuracy."""
    subsets = library(table.measured())
    column = {tuple(s): c for c, s in enumerate(table.members)}
    outcome = table.outcome[:, [column[tuple(s)] for s in subsets]].astype(np.float32)
    errors = {(k, a): 0.0 for k in LIBRARY_KS for a in LIBRARY_SHRINK}
    for train, val in folds:
        sims = x[val] @ x[train].T
        overall = outcome[train].mean(axis=0)
        for k in LIBRARY_KS:
            index, w = nearest(sims, k)
            num = np.einsum("nk,nkf->nf", w, outcome[train][index])
            for a in LIBRARY_SHRINK:
                estimate = (num + a * overall) / (w.sum(axis=1, keepdims=True) + a)
                errors[(k, a)] += float(((estimate - outcome[val]) ** 2).sum())
    k, shrink = min(errors, key=errors.__getitem__)
    width = max(len(s) for s in subsets)
    arrays = {
        "knn_x": x.astype(np.float32),
        "lib_members": np.array([s + [-1] * (width - len(s)) for s in subsets], np.int16),
        "lib_outcome": outcome,
        "lib_global": outcome.mean(axis=0),
        "train_answers": data.answers.astype(np.int16),
        "train_success": data.success.astype(np.float32),
    }
    meta = {"lib_k": k, "lib_shrink": shrink, "lib_size": len(subsets), "lib_brier": round(errors[(k, shrink)] / outcome.size, 5)}
    return Fitted(meta, arrays)


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
