"""Layer by layer: the quality of each layer's proposals and of the final answer; and the paper's
aggregator-against-ranker comparison (Fig. 4a) on runs that share their layer-1 proposals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from statistics import fmean

import numpy as np

from moa_lab.analysis._runs import Analysis, clean, figure, spec_of
from moa_lab.scoring import estimate, paired_difference
from moa_lab.tracking import QueryRecord, RunLog


def _mean(scores: Sequence[float | None]) -> float:
    values = [s for s in scores if s is not None]
    return fmean(values) if values else float("nan")


def _layer_scores(record: QueryRecord) -> list[list[float | None]]:
    if record.layer_scores is not None:
        return record.layer_scores
    return [record.proposal_scores] if record.proposal_scores is not None else []


def layers(runs: Sequence[RunLog]) -> Analysis:
    """Per run and layer: the mean proposal score, the best proposal's score (oracle), then the
    final answer's score, each a mean over samples with a 95% bootstrap CI."""
    rows: list[dict[str, object]] = []
    fig, ax = figure()
    for run in runs:
        recs = [r for r in run.records if _layer_scores(r) and r.score is not None]
        if not recs:
            continue
        depth = min(len(_layer_scores(r)) for r in recs)
        points = []
        for k in range(depth):
            mean = estimate([_mean(_layer_scores(r)[k]) for r in recs])
            best = estimate([max((s for s in _layer_scores(r)[k] if s is not None), default=0.0) for r in recs])
            points.append(mean)
            rows.append({"run": run.header.label, "stage": f"layer {k + 1}", "samples": mean.n, "quality": clean(mean.mean),
                         "ci_low": clean(mean.low), "ci_high": clean(mean.high), "oracle": clean(best.mean)})
        final = estimate([r.score for r in recs if r.score is not None])
        points.append(final)
        rows.append({"run": run.header.label, "stage": "answer", "samples": final.n, "quality": clean(final.mean),
                     "ci_low": clean(final.low), "ci_high": clean(final.high), "oracle": ""})
        x = np.arange(len(points))
        line = ax.plot(x, [p.mean for p in points], marker="o", label=run.header.label)[0]
        ax.fill_between(x, [p.low for p in points], [p.high for p in points], alpha=0.15, color=line.get_color())
    depth = max((int(str(r["stage"]).split()[-1]) for r in rows if r["stage"] != "answer"), default=0)
    ax.set_xticks(range(depth + 1), [f"layer {k + 1}" for k in range(depth)] + ["answer"])
    ax.set(ylabel="quality (mean score, 95% CI)", title="Quality of each layer's output")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    notes = [f"{r['run']} {r['stage']}: {r['quality']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" for r in rows]
    if not rows:
        notes.append("no run has scored proposals (layer_scores): evaluate with a scorer that scores proposals")
    return Analysis("layers", "Quality of each layer", rows, fig, notes)


def _group_key(run: RunLog) -> str:
    return json.dumps([run.header.task, [layer.model_dump(mode="json") for layer in spec_of(run).layers[:1]]], sort_keys=True)


def _aggregator(run: RunLog) -> str:
    agg = spec_of(run).aggregator
    return agg.agent if agg is not None else ""


def ranker(runs: Sequence[RunLog]) -> Analysis:
    """Runs with the same layer-1 proposers on the same task, compared by aggregator (synthesize,
    rank, vote): quality with CIs and the paired difference from the synthesizing aggregator."""
    groups: dict[str, list[RunLog]] = {}
    for run in runs:
        spec = spec_of(run)
        if spec.aggregator is not None and len(spec.layers) == 1 and any(r.score is not None for r in run.records):
            groups.setdefault(_group_key(run), []).append(run)
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    for members in (g for g in groups.values() if len({_aggregator(r) for r in g}) > 1):
        ids = set.intersection(*({r.id for r in m.records if r.score is not None} for m in members))
        base = next((m for m in members if _aggregator(m) == "synthesize"), members[0])
        by_id = {m.header.label: {r.id: r for r in m.records} for m in members}
        order = sorted(ids)
        first = by_id[base.header.label]
        layer1 = estimate([_mean(first[i].proposal_scores or []) for i in order if first[i].proposal_scores is not None])
        for m in members:
            mine = by_id[m.header.label]
            same = fmean(float([p.text for p in mine[i].layers[0]] == [p.text for p in first[i].layers[0]]) for i in order)
            est = estimate([mine[i].score for i in order])  # type: ignore[misc]
            diff = paired_difference([mine[i].score for i in order], [first[i].score for i in order])  # type: ignore[misc]
            rows.append({"task": m.header.task or "", "run": m.header.label, "aggregator": _aggregator(m),
                         "samples": len(order), "quality": clean(est.mean), "ci_low": clean(est.low), "ci_high": clean(est.high),
                         "vs": base.header.label, "difference": clean(diff.mean), "diff_low": clean(diff.low),
                         "diff_high": clean(diff.high), "same_proposals": clean(same), "layer1_mean": clean(layer1.mean)})
            notes.append(f"{m.header.label} ({rows[-1]['aggregator']}): {est} ; minus {base.header.label}: {diff} "
                         f"(same layer-1 proposals on {same:.0%} of {len(order)} samples)")
    fig, ax = figure()
    tasks = list(dict.fromkeys(str(r["task"]) for r in rows))
    aggs = list(dict.fromkeys(str(r["aggregator"]) for r in rows))
    width = 0.8 / max(1, len(aggs) + 1)
    for j, agg in enumerate(["layer-1 mean", *aggs]):
        xs, ys, err = [], [], [[], []]
        for t_i, task in enumerate(tasks):
            row = next((r for r in rows if r["task"] == task and (agg == "layer-1 mean" or r["aggregator"] == agg)), None)
            if row is None:
                continue
            q = float(row["layer1_mean"] if agg == "layer-1 mean" else row["quality"])  # type: ignore[arg-type]
            xs.append(t_i + j * width)
            ys.append(q)
            err[0].append(0 if agg == "layer-1 mean" else q - float(row["ci_low"]))  # type: ignore[arg-type]
            err[1].append(0 if agg == "layer-1 mean" else float(row["ci_high"]) - q)  # type: ignore[arg-type]
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=agg)
    if tasks:
        ax.set_xticks([i + width * len(aggs) / 2 for i in range(len(tasks))], tasks)
    ax.set(ylabel="quality (mean score, 95% CI)", title="Aggregate-and-synthesize vs LLM ranker (same proposals)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if not rows:
        notes.append("no comparable runs: give runs whose layer-1 proposers are the same and whose aggregators differ")
    return Analysis("ranker", "Aggregator vs ranker", rows, fig, notes)
