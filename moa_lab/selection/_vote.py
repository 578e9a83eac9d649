"""Offline replay of a plurality vote over recorded answers (the `vote` aggregator's rule)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def vote_static(answers: np.ndarray, success: np.ndarray, subset: Sequence[int]) -> np.ndarray:
    """Per query, whether a vote of `subset` (in that order) is right: the answer most members share
    wins, ties go to the member listed first, and with nothing extracted the first member's answer
    stands, exactly as the `vote` aggregator decides."""
    cols = np.asarray(subset, int)
    a = answers[:, cols]
    known = a >= 0
    counts = ((a[:, :, None] == a[:, None, :]) & known[:, None, :] & known[:, :, None]).sum(axis=2)
    winner = np.argmax(counts == counts.max(axis=1, keepdims=True), axis=1)
    return np.nan_to_num(success[np.arange(len(a)), cols[winner]]) > 0


def vote_routed(answers: np.ndarray, success: np.ndarray, subsets: Sequence[Sequence[int]]) -> np.ndarray:
    """Like `vote_static`, with each query's own ordered subset."""
    out = np.zeros(len(subsets), bool)
    for q, subset in enumerate(subsets):
        out[q] = vote_static(answers[q:q + 1], success[q:q + 1], subset)[0]
    return out
