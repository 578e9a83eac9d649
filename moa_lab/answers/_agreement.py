"""How much a layer's answers agree: the measure a cascade stops on.

One record (`Agreement`) for two kinds of answer:

- answers an extractor reads (a number, a word, a choice letter): `share` is the fraction of the
  answers in the plurality, `margin` the plurality's lead over the runner-up, both over *every*
  answer given, so a reply that states nothing (or a failed proposal, passed as "") counts against
  agreement;
- open-ended answers: `similarity` is the mean similarity over all pairs of answers, chrF by default
  (character n-gram F-score from sacrebleu, with β = 1 so that it is symmetric, case ignored), or
  any similarity in [0, 1] the caller gives (the cosine of answer embeddings, say).

Fewer than two answers never agree (value 0): one answer agreeing with itself says nothing. Each
record also names a representative answer, the one a cascade that stops answers with: the first
answer of the plurality (the answer a `vote` would pick) or the medoid (the answer most similar to
the others, ties to the first).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from moa_lab.answers._extractor import majority

Measure = Literal["share", "margin", "similarity"]
MEASURES: tuple[Measure, ...] = ("share", "margin", "similarity")
Similarity = Callable[[str, str], float]


@dataclass(frozen=True)
class Agreement:
    """How much `answers` answers agree: `value` in [0, 1] (what a threshold is compared with) and
    the position of the representative answer (`chosen`, None when no answer could stand for them)."""

    value: float
    chosen: int | None
    answers: int


def vote_agreement(texts: Sequence[str], extract: Callable[[str], str], *, margin: bool = False) -> Agreement:
    """Agreement of answers read by `extract` (a `(text) -> key` function, "" for no answer): the
    plurality's share of all answers, or with `margin` its lead over the second-largest group."""
    keys = [extract(t) if t else "" for t in texts]
    won = majority(keys)
    if won is None or len(keys) < 2:
        return Agreement(0.0, won[0] if won else None, len(keys))
    chosen, votes = won
    if not margin:
        return Agreement(votes / len(keys), chosen, len(keys))
    counts = sorted(Counter(k for k in keys if k).values(), reverse=True)
    second = counts[1] if len(counts) > 1 else 0
    return Agreement((votes - second) / len(keys), chosen, len(keys))


def similarity_agreement(texts: Sequence[str], similarity: Similarity | None = None) -> Agreement:
    """Agreement of open-ended answers: their mean pairwise `similarity` (default `chrf`), with the
    medoid as representative. An empty answer is similar to nothing (0)."""
    sim = similarity or chrf
    n = len(texts)
    if n < 2:
        return Agreement(0.0, 0 if n and texts[0].strip() else None, n)
    table = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if texts[i].strip() and texts[j].strip():
                table[i][j] = table[j][i] = min(1.0, max(0.0, float(sim(texts[i], texts[j]))))
    pairs = n * (n - 1) / 2
    value = sum(table[i][j] for i in range(n) for j in range(i + 1, n)) / pairs
    stated = [i for i in range(n) if texts[i].strip()]
    chosen = max(stated, key=lambda i: (sum(table[i]), -i)) if stated else None
    return Agreement(value, chosen, n)


def agreement(
    texts: Sequence[str], measure: Measure = "share", *, extract: Callable[[str], str] | None = None,
    similarity: Similarity | None = None,
) -> Agreement:
    """Agreement of `texts` by `measure`: `share` or `margin` of the answers `extract` reads (it is
    required for them), or `similarity` (default chrF)."""
    if measure == "similarity":
        return similarity_agreement(texts, similarity)
    if measure not in ("share", "margin"):
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    if extract is None:
        raise ValueError(f"the {measure} measure needs an extractor to read answers")
    return vote_agreement(texts, extract, margin=measure == "margin")


def chrf(a: str, b: str) -> float:
    """chrF of two texts in [0, 1] (character 1- to 6-grams, β = 1, case ignored): symmetric, and 1 for
    texts equal up to case and whitespace. sacrebleu loads on the first call."""
    if not a.strip() or not b.strip():
        return 0.0
    return float(_chrf_metric().sentence_score(a, [b]).score) / 100.0


@functools.cache
def _chrf_metric() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(beta=1, lowercase=True)
