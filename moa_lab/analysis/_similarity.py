"""How close the aggregate is to each proposal, against that proposal's quality (paper Fig. 4b):
BLEU (sacrebleu, the aggregate as hypothesis and the proposal as reference) and the cosine of
their embeddings, with the Spearman correlation between similarity and score within each sample.

Two sources: within a run, the final answer against the last layer's proposals (scored per
proposal); across runs, the answers of aggregate runs (`aggregates`, e.g. Together-MoA replayed)
against the answers of one-model runs on the same samples, each proposal scored by its run's score
or, where the runs were not scored, by an external per-system quality (a leaderboard column).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from moa_lab.analysis._runs import Analysis, clean, figure, spec_of
from moa_lab.embedding import Embedder
from moa_lab.scoring import estimate
from moa_lab.tracking import RunLog


@dataclass(frozen=True)
class Triple:
    """One sample's aggregate and its proposals (name, text, score)."""

    aggregate: str
    sample: str
    answer: str
    proposals: list[tuple[str, str, float]]


def triples(runs: Sequence[RunLog], aggregates: Sequence[str], external: Mapping[str, tuple[str, float]] | None) -> list[Triple]:
    """The (aggregate, proposals) of every sample, from within runs and across runs."""
    out: list[Triple] = []
    for run in runs:
        if run.header.label in aggregates or spec_of(run).aggregator is None:
            continue
        for r in run.records:
            if r.answer is None or not r.layer_scores:
                continue
            last = [(p.agent, p.text, s) for p, s in zip(r.layers[-1], r.layer_scores[-1]) if p.ok and s is not None]
            out.append(Triple(run.header.label, r.id, r.answer.text, last))
    proposal_runs = [r for r in runs if r.header.label not in aggregates and spec_of(r).aggregator is None]
    for agg in (r for r in runs if r.header.label in aggregates):
        answers = {q.id: q for q in proposal_runs[0].records} if proposal_runs else {}
        by_run = [(p.header.label, {q.id: q for q in p.records}) for p in proposal_runs]
        for q in agg.records:
            if q.answer is None or q.id not in answers:
                continue
            props = []
            for label, records in by_run:
                mine = records.get(q.id)
                score = mine.score if mine is not None and mine.score is not None else (external or {}).get(label, ("", None))[1]
                if mine is not None and mine.answer is not None and score is not None:
                    props.append((label, mine.answer.text, float(score)))
            out.append(Triple(agg.header.label, q.id, q.answer.text, props))
    return out


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def similarity(runs: Sequence[RunLog], embedder: Embedder, *, aggregates: Sequence[str] = (),
               external: Mapping[str, tuple[str, float]] | None = None) -> Analysis:
    """Mean BLEU and cosine per (aggregate, proposer), and per aggregate the mean within-sample
    Spearman correlation of each similarity with the proposals' scores (95% bootstrap CI)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    found = [t for t in triples(runs, aggregates, external) if len(t.proposals) >= 2]
    texts = list(dict.fromkeys([t.answer for t in found] + [p[1] for t in found for p in t.proposals]))
    vectors = dict(zip(texts, embedder.encode(texts))) if texts else {}
    per: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    rho: dict[str, list[tuple[float, float]]] = {}
    for t in found:
        a = vectors[t.answer] / (np.linalg.norm(vectors[t.answer]) or 1.0)
        sims = []
        for name, text, score in t.proposals:
            b = vectors[text] / (np.linalg.norm(vectors[text]) or 1.0)
            sims.append((bleu.sentence_score(t.answer, [text]).score / 100, float(a @ b), score))
            per.setdefault((t.aggregate, name), []).append(sims[-1])
        scores = [s for _, _, s in sims]
        rho.setdefault(t.aggregate, []).append((_spearman([s[0] for s in sims], scores), _spearman([s[1] for s in sims], scores)))
    rows: list[dict[str, object]] = []
    for (agg, name), values in per.items():
        rows.append({"aggregate": agg, "proposer": name, "samples": len(values), "bleu": clean(fmean(v[0] for v in values)),
                     "cosine": clean(fmean(v[1] for v in values)), "proposer_score": clean(fmean(v[2] for v in values))})
    notes = []
    for agg, pairs in rho.items():
        b, c = estimate([p[0] for p in pairs]), estimate([p[1] for p in pairs])
        for r in rows:
            if r["aggregate"] == agg:
                r |= {"spearman_bleu": clean(b.mean), "spearman_bleu_low": clean(b.low), "spearman_bleu_high": clean(b.high),
                      "spearman_cosine": clean(c.mean), "spearman_cosine_low": clean(c.low), "spearman_cosine_high": clean(c.high),
                      "spearman_samples": b.n}
        notes.append(f"{agg}: Spearman(BLEU, score) {b} and (cosine, score) {c} over {b.n} samples with distinct scores")
    fig, axes = figure(5.6, 4.4, cols=2)
    aggs = list(rho)
    names = list(dict.fromkeys(str(r["proposer"]) for r in rows))
    width = 0.8 / max(1, len(aggs))
    for ax, metric in zip(axes, ("bleu", "cosine")):
        for j, agg in enumerate(aggs):
            vals = [next((float(r[metric]) for r in rows if r["aggregate"] == agg and r["proposer"] == n), 0.0) for n in names]  # type: ignore[arg-type]
            key = f"spearman_{metric}"
            rho_v = next((r[key] for r in rows if r["aggregate"] == agg), "")
            ax.bar(np.arange(len(names)) + j * width, vals, width, label=f"{agg} (ρ={rho_v if rho_v == '' else f'{rho_v:.2f}'})")
        ax.set_xticks(np.arange(len(names)) + width * (len(aggs) - 1) / 2, names, rotation=30, ha="right", fontsize=7)
        ax.set(ylabel=f"mean {metric.upper() if metric == 'bleu' else 'embedding cosine'} (aggregate vs proposal)",
               title=f"{'BLEU' if metric == 'bleu' else 'Cosine'} to each proposal; ρ: Spearman with its score")
        ax.legend(fontsize=6)
        ax.grid(axis="y", alpha=0.3)
    if not rows:
        notes.append("no aggregate with two or more scored proposals: give aggregate runs (--aggregate) or runs with layer scores")
    return Analysis("similarity", "Similarity of the aggregate to each proposal", rows, fig, notes)
