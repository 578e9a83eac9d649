"""The router's numeric kernels: prediction maths and vote maths over plain numpy arrays.

Training (`moa_lab.routing`) fits with these very functions and inference (`Router`) predicts with
them, so an out-of-fold estimate made while training is the number the selector would have computed.
numpy only: a topology with a learned selector loads no scientific library beyond it.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise. Inputs are clipped to ±40 (where it is 0 or 1 to double
    precision) so that large magnitudes raise no overflow warning."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def nearest(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Along the last axis of similarities, the indices of the k largest (in no particular order)
    and their weights: the similarity floored at 0, plus 1e-6 so that a weight is never zero."""
    k = min(k, sims.shape[-1])
    index = np.argpartition(-sims, k - 1, axis=-1)[..., :k]
    weights = np.maximum(np.take_along_axis(sims, index, axis=-1), 0.0) + 1e-6
    return index, weights


def knn_success(x: np.ndarray, memory: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per query in `x` (n, dim) and proposer, the similarity-weighted share of successes among the k
    nearest rows of `memory` (its `labels`: rows × proposers, NaN = not called); 0.5 where none is known."""
    index, weights = nearest(x @ memory.T, k)
    y = labels[index]  # (n, k, proposers)
    known = ~np.isnan(y)
    num = (np.where(known, y, 0.0) * weights[:, :, None]).sum(axis=1)
    den = (known * weights[:, :, None]).sum(axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.5)


def mlp_logits(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Output logits of a one-hidden-layer ReLU network (scikit-learn's MLPClassifier layout)."""
    hidden = np.maximum(x @ w1 + b1, 0.0)
    return hidden @ w2 + b2


def vote_quality(probs: np.ndarray, valid: np.ndarray, mix: float) -> np.ndarray:
    """P(a plurality vote is right) for rows of independent member success probabilities, members
    ordered so that ties go to the first. A mix of two error models: wrong answers all distinct
    (right when two agree, or when the first is right) and wrong answers all alike (right on a strict
    majority, half a chance on an even split); `mix` is the weight of the first, fitted in training."""
    probs = -np.sort(-probs, axis=1)
    n = valid.sum(axis=1)
    first = probs[:, :1]
    rest = _count_distribution(probs[:, 1:])
    distinct = first[:, 0] + (1 - first[:, 0]) * (1 - rest[:, 0] - rest[:, 1])
    counts = np.zeros((len(probs), rest.shape[1] + 1))  # rest's counts and the first member's
    counts[:, :-1] = rest * (1 - first)
    counts[:, 1:] += rest * first
    c = np.arange(counts.shape[1])
    majority = (counts * ((2 * c[None, :] > n[:, None]) + 0.5 * (2 * c[None, :] == n[:, None]))).sum(axis=1)
    return mix * distinct + (1 - mix) * majority


def latent_vote_quality(probs: np.ndarray, valid: np.ndarray, members: np.ndarray, mix: float,
                        class_weight: np.ndarray | None = None, class_shift: np.ndarray | None = None) -> np.ndarray:
    """P(the vote is right), mixed over latent difficulty classes within which proposers err
    independently: class c has weight `class_weight[c]` and moves proposer j's success log-odds by
    `class_shift[c, j]`. Hard questions are hard for every model, and this is what keeps the rule from
    believing that more weak voters always help. Without classes, `vote_quality`.

    `members` (rows × slots) holds proposer indices, -1 in unused slots (`valid` is `members >= 0`)."""
    if class_weight is None or class_shift is None:
        return vote_quality(probs, valid, mix)
    logits = np.log(np.clip(probs, 1e-6, 1 - 1e-6) / np.clip(1 - probs, 1e-6, 1))
    safe = np.where(valid, members, 0)
    shifted = np.where(valid, sigmoid(logits + class_shift[:, safe]), 0.0)  # (classes, rows, slots)
    classes = len(class_weight)
    quality = vote_quality(shifted.reshape(-1, probs.shape[1]), np.tile(valid, (classes, 1)), mix)
    return np.asarray(class_weight) @ quality.reshape(classes, len(probs))


def synthesize_quality(probs: np.ndarray, valid: np.ndarray, members: np.ndarray, diversity: np.ndarray,
                       weight: float) -> np.ndarray:
    """Predicted quality of a synthesized answer: the best member's success probability plus `weight`
    times the members' mean pairwise `diversity` (how often exactly one of two proposers is right)."""
    safe = np.where(valid, members, 0)
    pair = diversity[safe[:, :, None], safe[:, None, :]] * (valid[:, :, None] & valid[:, None, :])
    n = valid.sum(axis=1)
    mean_pair = pair.sum(axis=(1, 2)) / np.maximum(n * (n - 1), 1)
    return probs.max(axis=1) + weight * mean_pair


def _count_distribution(probs: np.ndarray) -> np.ndarray:
    """Row-wise distribution of the number of successes (Poisson-binomial); at least 2 columns."""
    dist = np.zeros((probs.shape[0], max(probs.shape[1] + 1, 2)))
    dist[:, 0] = 1.0
    for j in range(probs.shape[1]):
        p = probs[:, j:j + 1]
        dist[:, 1:] = dist[:, 1:] * (1 - p) + dist[:, :-1] * p
        dist[:, :1] *= 1 - p
    return dist


# -- answer diversity (the `diverse` selector and the router's `diversity` knob) ---------------------------


def deviation_gram(deviation: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(proposers, proposers): the weighted share of queries on which two proposers deviate from the
    reference answer *alike* (the same wrong answer); the diagonal is each one's deviation rate.
    `deviation` (queries × proposers) holds the id of a deviating answer, or -1 where the proposer
    gave the reference answer or was not called; two ids are alike only within a query. A Gram matrix
    of one-hot deviation vectors, so positive semi-definite."""
    d = np.asarray(deviation)
    alike = (d[:, :, None] == d[:, None, :]) & (d[:, :, None] >= 0)
    return np.einsum("n,nij->ij", weights, alike) / max(float(weights.sum()), 1e-12)


def answer_similarity(gram: np.ndarray, ridge: float) -> np.ndarray:
    """A correlation matrix from a deviation Gram: (G + ridge·I) scaled to a unit diagonal. `ridge` is
    a private deviation rate every proposer is credited with, so one that never deviated is similar
    to no one, and the matrix is positive definite."""
    g = gram + ridge * np.eye(len(gram))
    scale = 1.0 / np.sqrt(np.diag(g))
    return g * scale[:, None] * scale[None, :]


def log_volume(similarity: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Per row of `members` (proposer indices, -1 in unused slots), log det of the members'
    similarity submatrix: 0 for one member or members that never deviate alike, more negative the
    more redundant they are (the diversity term of a determinantal point process)."""
    valid = members >= 0
    safe = np.where(valid, members, 0)
    sub = similarity[safe[:, :, None], safe[:, None, :]]
    eye = np.eye(members.shape[1], dtype=bool)
    sub = np.where(valid[:, :, None] & valid[:, None, :], sub, eye)
    return np.linalg.slogdet(sub)[1]


def dpp_greedy(quality: np.ndarray, similarity: np.ndarray, k: int, diversity: float) -> list[int]:
    """k proposers chosen greedily for the largest 2·Σ log quality + diversity · log det similarity:
    the MAP of a determinantal point process with kernel diag(q)·S·diag(q) (Kulesza & Taskar 2012)
    when `diversity` is 1, top-k by quality when it is 0. Ties go to the lower index."""
    logq = 2.0 * np.log(np.clip(quality, 1e-6, None))
    m = len(quality)
    chosen: list[int] = []
    for _ in range(min(k, m)):
        rest = np.array([j for j in range(m) if j not in chosen])
        members = np.array([chosen + [int(j)] for j in rest])
        gain = logq[rest] + (diversity * log_volume(similarity, members) if diversity else 0.0)
        chosen.append(int(rest[int(np.argmax(gain))]))
    return chosen
