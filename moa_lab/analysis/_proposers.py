"""Quality against the number of proposers (the paper's "more proposers is better"), and one model
sampled n times (single-proposer) against n different proposers (multi-proposer).

A pool is a set of candidate answers per sample with their scores: the layer-1 proposals of one run
(its `proposal_scores`), or the answers of several one-model runs over the same samples. For each
n, majority votes over n-subsets of the pool (every subset, or a seeded sample of them) give each
sample's expected vote quality; the curve is its mean over samples with a bootstrap CI.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from moa_lab.analysis._runs import Analysis, clean, figure, scored, single_model, spec_of
from moa_lab.scoring import estimate
from moa_lab.tracking import RunLog


@dataclass(frozen=True)
class Pool:
    """Candidates per sample: `keys[s, j]` the extracted answer id of candidate j (-1: none),
    `scores[s, j]` its score; `kind` is single-proposer or multi-proposer."""

    label: str
    kind: str
    names: list[str]
    keys: np.ndarray
    scores: np.ndarray


def pools(runs: Sequence[RunLog], extract: Callable[[str], str]) -> list[Pool]:
    """The pool of every multi-proposer run and, per task, one pool of the one-model runs (when two
    or more answered the same samples)."""
    out: list[Pool] = []
    by_task: dict[str | None, list[RunLog]] = {}
    for run in runs:
        if single_model(run) is not None and scored(run):
            by_task.setdefault(run.header.task, []).append(run)
    for task, singles in by_task.items():
        common = set.intersection(*({q.id for q in r.records} for r in singles))
        ids = [q.id for q in singles[0].records if q.id in common]
        if len(singles) < 2 or not ids:
            continue
        by_id = [{q.id: q for q in r.records} for r in singles]
        texts = [[m[i].answer.text if m[i].answer else None for m in by_id] for i in ids]
        scores = [[m[i].score for m in by_id] for i in ids]
        label = "one-model runs" + (f" ({task})" if task else "")
        out.append(_pool(label, "multi-proposer", [r.header.label for r in singles], texts, scores, extract))
    for run in runs:
        records = [q for q in run.records if q.proposal_scores is not None and len(q.layers[0]) > 1]
        if not records or spec_of(run).layers[0].cascade is not None:  # a cascade's layer 1 is no fixed pool
            continue
        agents = spec_of(run).layers[0].proposers
        kind = "single-proposer" if all(a == agents[0] for a in agents) else "multi-proposer"
        texts = [[p.text if p.ok else None for p in q.layers[0]] for q in records]
        out.append(_pool(run.header.label, kind, [p.agent for p in records[0].layers[0]], texts,
                         [list(q.proposal_scores or []) for q in records], extract))
    return out


def _pool(label: str, kind: str, names: list[str], texts: list[list[str | None]], scores: list[list[float | None]],
          extract: Callable[[str], str]) -> Pool:
    ids: dict[str, int] = {}
    keys = np.array([[ids.setdefault(k, len(ids)) if (k := extract(t) if t else "") else -1 for t in row] for row in texts])
    values = np.array([[0.0 if s is None else s for s in row] for row in scores], dtype=float)
    return Pool(label, kind, names, keys.reshape(len(texts), -1), values.reshape(len(texts), -1))


def vote_quality(pool: Pool, subset: Sequence[int]) -> np.ndarray:
    """Per sample, the score of the majority answer among the subset's candidates (ties and no
    answer go to the first candidate, as the vote aggregator does)."""
    keys, scores = pool.keys[:, subset], pool.scores[:, subset]
    counts = (keys[:, :, None] == keys[:, None, :]).sum(axis=2) * (keys >= 0)
    winner = counts.argmax(axis=1)
    return scores[np.arange(len(scores)), winner]


def curve(pool: Pool, *, max_subsets: int = 100, seed: int = 0) -> list[dict[str, object]]:
    """Rows (n, quality with CI, best-of-n oracle) for n = 1 … the pool's size."""
    size = pool.keys.shape[1]
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for n in range(1, size + 1):
        if math.comb(size, n) <= max_subsets:
            subsets = [list(c) for c in itertools.combinations(range(size), n)]
        else:
            subsets = [rng.sample(range(size), n) for _ in range(max_subsets)]
        quality = np.mean([vote_quality(pool, s) for s in subsets], axis=0)
        oracle = np.mean([pool.scores[:, s].max(axis=1) for s in subsets], axis=0)
        est, best = estimate(quality.tolist()), estimate(oracle.tolist())
        rows.append({"pool": pool.label, "kind": pool.kind, "n": n, "subsets": len(subsets), "samples": len(quality),
                     "quality": clean(est.mean), "ci_low": clean(est.low), "ci_high": clean(est.high),
                     "stderr": clean(est.stderr), "oracle": clean(best.mean)})
    return rows


def proposers(runs: Sequence[RunLog], extract: Callable[[str], str], *, max_subsets: int = 100, seed: int = 0) -> Analysis:
    """Vote quality against the number of proposers for each pool, with 95% bootstrap CIs."""
    found = pools(runs, extract)
    rows = [row for p in found for row in curve(p, max_subsets=max_subsets, seed=seed)]
    fig, ax = figure()
    for p in found:
        mine = [r for r in rows if r["pool"] == p.label]
        n = [r["n"] for r in mine]
        q = np.array([r["quality"] for r in mine], dtype=float)
        line = ax.plot(n, q, marker="o", ms=3, label=f"{p.label} ({p.kind})",
                       linestyle="-" if p.kind == "multi-proposer" else "--")[0]
        ax.fill_between(n, [r["ci_low"] for r in mine], [r["ci_high"] for r in mine], alpha=0.2, color=line.get_color())
    ax.set(xlabel="number of proposers voting (n)", ylabel="quality (mean score)", title="Quality vs number of proposers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    notes = [f"{p.label}: {p.kind}, {p.keys.shape[1]} candidates over {p.keys.shape[0]} samples; "
             f"n=1 {_at(rows, p.label, 1)}, n={p.keys.shape[1]} {_at(rows, p.label, p.keys.shape[1])}" for p in found]
    if not found:
        notes.append("no pool: give runs with several layer-1 proposers, or two or more scored one-model runs")
    return Analysis("proposers", "Quality vs number of proposers", rows, fig, notes)


def _at(rows: list[dict[str, object]], label: str, n: int) -> str:
    row = next(r for r in rows if r["pool"] == label and r["n"] == n)
    return f"{row['quality']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
