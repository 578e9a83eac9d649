"""Fitting what diversity is judged by: the diverse selector's reference set, label-free (how each
proposer's answers stand to the pool's consensus), and the router's error similarity (how proposers'
wrong answers coincide, from the labels). Each returns finished arrays; `moa_lab.selection` reads them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.embedding import Embedder
from moa_lab.routing._data import RoutingData
from moa_lab.selection import Reference, answer_similarity, deviation_gram

NEIGHBOURS = (5, 10, 25, 50, 100)
"""Neighbourhood sizes the reference's cross-validation chooses from."""
SHRINK = (1.0, 3.0, 10.0, 30.0, 100.0)
"""Pseudo-queries of the whole reference set mixed into a neighbourhood, chosen the same way."""


def consensus(answers: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per query, the pool's plurality answer id (-1 where nobody gave an extractable answer). Ties
    go to the answer of the proposer that gives the plurality answer most often over all queries
    (ranked on a first pass whose ties go to the lowest index)."""
    a = np.where(known, answers, -1)
    rows, m = np.arange(len(a)), a.shape[1]
    support = ((a[:, :, None] == a[:, None, :]) & (a[:, None, :] >= 0)).sum(axis=2) * (a >= 0)
    tiebreak = -np.arange(m) / (2.0 * m)  # always below 1: it only orders equal support
    for _ in range(2):
        best = np.argmax(support + tiebreak[None, :], axis=1)
        z = np.where(support[rows, best] > 0, a[rows, best], -1)
        agree = (a == z[:, None]) & (z[:, None] >= 0)
        tiebreak = 0.5 * agree.sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    return z


def deviations(answers: np.ndarray, agree: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per cell, the id of a deviating answer (the same wrong answer has the same id within its
    query), or -1 where the proposer gave the agreed answer or was not called. An answer nothing was
    extracted from deviates alike with no one (id m + proposer index)."""
    m = answers.shape[1]
    unique = m + np.arange(m)[None, :].repeat(len(answers), 0)
    out = np.where(answers >= 0, answers, unique)
    return np.where(known & ~agree, out, -1).astype(np.int32)


def error_similarity(data: RoutingData) -> np.ndarray:
    """The proposers' similarity (`answer_similarity`) from the training rows' labels: how often two
    give the same wrong answer to one query. What a router's `diversity` knob weighs."""
    known = ~np.isnan(data.scores)
    deviation = deviations(data.answers, np.nan_to_num(data.success) > 0, known)
    gram = deviation_gram(deviation, np.ones(len(deviation)))
    return answer_similarity(gram, 1.0 / max(len(deviation), 1)).astype(np.float32)


def fit_reference(data: RoutingData, x: np.ndarray, embedder: Embedder, embedder_spec: dict[str, Any], *,
                  diversity: float = 1.0, labels: bool = False, provenance: Mapping[str, Any] | None = None) -> Reference:
    """The reference set of a diverse selector from every row of `data` (query embeddings `x`).
    Labels are not read (a cell's score only says whether the proposer was called) unless `labels`:
    then the right answer takes the consensus's place, competence is being right and a mistake is a
    wrong answer (where the consensus itself is often wrong, this tells how much it costs). The
    neighbourhood size and shrinkage are those whose leave-one-out competence best predicts, by log
    loss, whether each proposer gives the agreed answer on a reference query it has not seen."""
    if diversity < 0:
        raise ConfigError(f"diversity must be at least 0, not {diversity}")
    if len(data.ids) < 10:
        raise ConfigError(f"{len(data.ids)} reference queries are too few for a diverse selector (at least 10)")
    start = time.perf_counter()
    known = ~np.isnan(data.scores)
    z = consensus(data.answers, known)
    if labels:
        given, settled = np.nan_to_num(data.success) > 0, np.ones(len(z), bool)
    else:
        given, settled = (data.answers == z[:, None]) & (z[:, None] >= 0), z >= 0
    agree = np.where(known & settled[:, None], given.astype(np.float32), np.nan).astype(np.float32)
    deviation = deviations(data.answers, given, known)
    neighbours, shrink, loss = _choose_neighbourhood(x, agree)
    pool_agree = np.nansum(agree, axis=0) / np.maximum((~np.isnan(agree)).sum(axis=0), 1)
    arrays = {
        "memory": x.astype(np.float32),
        "agree": agree,
        "deviation": deviation,
        "pool_agree": pool_agree.astype(np.float32),
        "pool_gram": deviation_gram(deviation, np.ones(len(deviation))).astype(np.float32),
    }
    meta = {
        "proposers": data.proposers,
        "names": data.names,
        "embedder": {"id": embedder.id, "dim": embedder.dim, "spec": embedder_spec},
        "neighbours": neighbours,
        "shrink": shrink,
        "defaults": {"diversity": diversity},
        "training": {
            "source": data.source, "hash": data.fingerprint(), "queries": len(data.ids),
            "competence": "labels" if labels else "consensus", "consensus_share": round(float((z >= 0).mean()), 4),
            "loo_log_loss": round(loss, 5),
            "seconds": round(time.perf_counter() - start, 2), **(provenance or {}),
        },
    }
    return Reference(meta, arrays)


def _choose_neighbourhood(x: np.ndarray, agree: np.ndarray, chunk: int = 512) -> tuple[int, float, float]:
    """(neighbours, shrink, log loss): the pair whose leave-one-out estimate of each proposer's
    agreement with the consensus has the lowest log loss over the reference queries."""
    n = len(x)
    known = ~np.isnan(agree)
    a = np.nan_to_num(agree)
    top = min(max(NEIGHBOURS), n - 1)
    sizes = sorted({min(s, top) for s in NEIGHBOURS})
    total, count = a.sum(axis=0), known.sum(axis=0)
    losses = {(size, alpha): 0.0 for size in sizes for alpha in SHRINK}
    for lo in range(0, n, chunk):  # a chunk of queries at a time: memory stays chunk × n
        rows = np.arange(lo, min(lo + chunk, n))
        sims = x[rows] @ x.T
        sims[np.arange(len(rows)), rows] = -np.inf  # leave the query itself out
        order = np.argsort(-sims, axis=1)[:, :top]
        weights = np.maximum(np.take_along_axis(sims, order, axis=1), 0.0) + 1e-6
        pool = np.clip((total - a[rows]) / np.maximum(count - known[rows], 1), 1e-3, 1 - 1e-3)
        for size in sizes:
            idx, w = order[:, :size], weights[:, :size]
            num = np.einsum("nk,nkj->nj", w, a[idx])
            den = np.einsum("nk,nkj->nj", w, known[idx].astype(float))
            for alpha in SHRINK:
                p = np.clip((num + alpha * pool) / (den + alpha), 1e-3, 1 - 1e-3)
                losses[(size, alpha)] -= float((known[rows] * (a[rows] * np.log(p) + (1 - a[rows]) * np.log(1 - p))).sum())
    size, alpha = min(losses, key=losses.__getitem__)
    return size, alpha, losses[(size, alpha)] / max(int(known.sum()), 1)
