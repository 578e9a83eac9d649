"""Answer-length distributions per system: judges favour long answers, so a quality gain read
beside the length it came with (what the length-controlled win rate corrects for)."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from moa_lab.analysis._runs import Analysis, clean, figure
from moa_lab.scoring import percentile
from moa_lab.tracking import RunLog


def length(runs: Sequence[RunLog]) -> Analysis:
    """Per run: answer length in characters (mean, quartiles, p95) and output tokens; a box plot."""
    rows: list[dict[str, object]] = []
    data: list[list[int]] = []
    for run in runs:
        chars = [len(r.answer.text) for r in run.records if r.answer is not None]
        if not chars:
            continue
        data.append(chars)
        tokens = [r.usage.output_tokens for r in run.records if r.answer is not None]
        rows.append({"run": run.header.label, "answers": len(chars), "mean_chars": clean(fmean(chars)),
                     "p25_chars": clean(percentile(chars, 25)), "median_chars": clean(percentile(chars, 50)),
                     "p75_chars": clean(percentile(chars, 75)), "p95_chars": clean(percentile(chars, 95)),
                     "mean_output_tokens": clean(fmean(tokens))})
    fig, ax = figure(max(6.4, 0.45 * len(rows)), 4.2)
    if data:
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(rows) + 1), [str(r["run"]) for r in rows], rotation=35, ha="right", fontsize=7)
    ax.set(ylabel="answer length (characters)", title="Answer length per system")
    ax.grid(axis="y", alpha=0.3)
    notes = [f"{r['run']}: median {r['median_chars']:.0f} chars, mean {r['mean_chars']:.0f}" for r in rows]
    return Analysis("length", "Answer length", rows, fig, notes)
