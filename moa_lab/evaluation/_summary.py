"""What an evaluation measured, computed from its RunLog records only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moa_lab.scoring import Estimate, estimate, percentile
from moa_lab.tracking import QueryRecord


@dataclass
class EvalSummary:
    """Statistics of one RunLog. Quality and oracle are means of per-sample scores with CIs; `quality`
    is None when nothing was scored (a run without targets)."""

    label: str
    runlog: Path
    quality: Estimate | None
    oracle: Estimate | None
    samples: int
    failed: int
    answer_chars: float
    cost_per_query: float
    """The topology's $ per query at list price (cache hits counted), judge calls included."""
    cost_total: float
    """$ this run paid (cache hits are free)."""
    input_tokens: int
    output_tokens: int
    calls: int
    cached_calls: int
    latency_p50: float
    latency_p95: float
    critical_path_p50: float
    """p50 of the topology's latency from the calls' original endpoint latencies (cache-independent)."""
    wall_s: float
    resumed: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for trackers."""
        out: dict[str, float] = {
            "samples": self.samples, "failed": self.failed, "answer_chars": self.answer_chars,
            "cost_per_query_usd": self.cost_per_query, "spent_usd": self.cost_total,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "calls": self.calls, "cached_calls": self.cached_calls,
            "latency_p50_s": self.latency_p50, "latency_p95_s": self.latency_p95,
            "critical_path_p50_s": self.critical_path_p50, "wall_s": self.wall_s,
        }
        if self.quality is not None:
            out |= {"quality": self.quality.mean, "quality_stderr": self.quality.stderr,
                    "quality_ci_low": self.quality.low, "quality_ci_high": self.quality.high}
        if self.oracle is not None:
            out |= {"oracle": self.oracle.mean, "oracle_ci_low": self.oracle.low, "oracle_ci_high": self.oracle.high}
        return out | self.extra


def write_summary_csv(path: Path, summaries: Sequence[EvalSummary]) -> Path:
    """One row per RunLog: its label and flat metrics (what the parent tracker run shows)."""
    import csv

    rows = [{"run": s.label, **s.metrics()} for s in summaries]
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["run"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize(label: str, runlog: Path, records: Sequence[QueryRecord], wall_s: float, resumed: int = 0, *,
              intervals: bool = True) -> EvalSummary:
    """Statistics over RunLog records (samples a judge could not score are left out of quality);
    without `intervals`, quality and oracle are means only (no bootstrap: a search trial's case)."""
    resamples = 2000 if intervals else 0
    scores = [r.score for r in records if r.score is not None]
    oracle = [r.oracle for r in records if r.oracle is not None]
    answered = [r.answer.text for r in records if r.answer is not None]
    calls = [c for r in records for c in r.calls]
    costs = [r.total_cost for r in records]  # properties summed over the calls: once per record
    usages = [r.usage for r in records]
    return EvalSummary(
        label=label,
        runlog=runlog,
        quality=estimate(scores, resamples=resamples) if scores else None,
        oracle=estimate(oracle, resamples=resamples) if oracle and len(oracle) == len(records) else None,
        samples=len(records),
        failed=sum(1 for r in records if r.error is not None),
        answer_chars=sum(len(a) for a in answered) / max(1, len(answered)),
        cost_per_query=sum(c.list_usd for c in costs) / max(1, len(records)),
        cost_total=sum(c.paid_usd for c in costs),
        input_tokens=sum(u.input_tokens for u in usages),
        output_tokens=sum(u.output_tokens for u in usages),
        calls=len(calls),
        cached_calls=sum(1 for c in calls if c.cached),
        latency_p50=percentile([r.latency_s for r in records], 50),
        latency_p95=percentile([r.latency_s for r in records], 95),
        critical_path_p50=percentile([r.critical_path_s for r in records], 50),
        wall_s=wall_s,
        resumed=resumed,
    )
