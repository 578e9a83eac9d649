"""Evaluate a topology on samples: run, score (the answer and every layer-1 proposal), stream a RunLog.

A killed evaluation resumes with `resume=True`: samples already in the RunLog are not run again, and
calls finished before the kill come back from the call cache, so nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa_lab.core import ConfigError, Sample
from moa_lab.models import ModelSet
from moa_lab.pipeline import Pipeline, QueryResult
from moa_lab.scoring import Estimate, Scorer, ScoringContext, estimate, percentile
from moa_lab.topology import TopologySpec
from moa_lab.tracking import RunLogWriter, read_runlog


@dataclass
class EvalSummary:
    """What an evaluation measured. Quality and oracle are means of per-sample scores with CIs."""

    label: str
    runlog: Path
    quality: Estimate
    oracle: Estimate | None
    samples: int
    failed: int
    answer_chars: float
    cost_per_query: float
    """The topology's $ per query at list price (cache hits counted)."""
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
        out = {
            "quality": self.quality.mean, "quality_stderr": self.quality.stderr,
            "quality_ci_low": self.quality.low, "quality_ci_high": self.quality.high,
            "samples": self.samples, "failed": self.failed, "answer_chars": self.answer_chars,
            "cost_per_query_usd": self.cost_per_query, "spent_usd": self.cost_total,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "calls": self.calls, "cached_calls": self.cached_calls,
            "latency_p50_s": self.latency_p50, "latency_p95_s": self.latency_p95,
            "critical_path_p50_s": self.critical_path_p50, "wall_s": self.wall_s,
        }
        if self.oracle is not None:
            out |= {"oracle": self.oracle.mean, "oracle_ci_low": self.oracle.low, "oracle_ci_high": self.oracle.high}
        return out | self.extra


async def score_result(result: QueryResult, scorer: Scorer, models: ModelSet, *, proposals: bool) -> dict[str, Any]:
    """The RunLog record of a result: its trace, its score, each layer-1 proposal's score, judge calls."""
    record = result.to_dict()
    ctx = ScoringContext(models)
    if result.answer is None:
        record |= {"score": 0.0, "score_explanation": "query failed"}
    else:
        score = await scorer.score(result.sample, result.answer.text, ctx)
        record |= {"score": score.value, "score_explanation": score.explanation}
    if proposals and result.layers:
        scores = await asyncio.gather(
            *(scorer.score(result.sample, p.text, ctx) for p in result.layers[0] if p.ok)
        )
        it = iter(scores)
        record["proposal_scores"] = [next(it).value if p.ok else 0.0 for p in result.layers[0]]
        record["oracle"] = max(record["proposal_scores"], default=0.0)
    record["judge_calls"] = [c.to_dict() for c in ctx.calls]
    record["judge_cost_usd"] = sum(c.cost.usd for c in ctx.calls)
    record["judge_list_cost_usd"] = sum(c.list_usd for c in ctx.calls)
    return record


def summarize(label: str, runlog: Path, records: Sequence[Mapping[str, Any]], wall_s: float, resumed: int = 0) -> EvalSummary:
    """Statistics over RunLog records (samples a judge could not score are left out of quality)."""
    scores = [float(r["score"]) for r in records if r.get("score") is not None and not math.isnan(float(r["score"]))]
    oracle = [float(r["oracle"]) for r in records if "oracle" in r and not math.isnan(float(r["oracle"]))]
    answered = [r for r in records if r.get("answer") is not None]
    # $ per query is the topology's price (list price of every call, cache hits included);
    # spent is what this run paid (cache hits are free)
    costs = [float(r.get("list_cost_usd", r["cost_usd"])) + float(r.get("judge_list_cost_usd", 0.0)) for r in records]
    spent = sum(float(r["cost_usd"]) + float(r.get("judge_cost_usd", 0.0)) for r in records)
    latencies = [float(r["latency_s"]) for r in records]
    critical = [float(r.get("critical_path_s", r["latency_s"])) for r in records]
    calls = [c for r in records for c in r["calls"]]
    return EvalSummary(
        label=label,
        runlog=runlog,
        quality=estimate(scores),
        oracle=estimate(oracle) if oracle and len(oracle) == len(records) else None,
        samples=len(records),
        failed=len(records) - len(answered),
        answer_chars=sum(len(r["answer"]) for r in answered) / max(1, len(answered)),
        cost_per_query=sum(costs) / max(1, len(records)),
        cost_total=spent,
        input_tokens=sum(int(r["input_tokens"]) for r in records),
        output_tokens=sum(int(r["output_tokens"]) for r in records),
        calls=len(calls),
        cached_calls=sum(1 for c in calls if c["cached"]),
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        critical_path_p50=percentile(critical, 50),
        wall_s=wall_s,
        resumed=resumed,
    )


async def evaluate(
    spec: TopologySpec,
    samples: Sequence[Sample],
    models: ModelSet,
    scorer: Scorer,
    *,
    runlog: Path,
    label: str = "",
    header: Mapping[str, Any] | None = None,
    resume: bool = False,
    concurrency: int = 16,
    score_proposals: bool | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> EvalSummary:
    """Run and score every sample not already in `runlog`; append each record as it finishes.

    When `stop` is set, no new sample starts and the ones in flight finish and are written, so
    their calls are cached and paid once; `resume=True` later does the rest.
    """
    label = label or spec.name
    head = {"label": label, "topology": spec.model_dump(mode="json"), "scorer": scorer.name, "samples": len(samples), **(header or {})}
    done: list[dict[str, Any]] = []
    if runlog.exists():
        if not resume:
            raise ConfigError(f"{runlog} exists: resume it with --resume, or remove it to start again")
        old_header, done = read_runlog(runlog)
        if old_header.get("topology") != head["topology"] or old_header.get("scorer") != head["scorer"]:
            raise ConfigError(f"{runlog}: was written by another topology or scorer; it cannot be resumed with this one")
        _rewrite_whole(runlog, old_header, done)
    finished = {r["id"] for r in done}
    todo = [s for s in samples if s.id not in finished]
    proposals = (not scorer.calls_models) if score_proposals is None else score_proposals
    pipeline = Pipeline(spec, models)
    start = time.perf_counter()
    records = list(done)
    with RunLogWriter(runlog, head, resume=resume) as writer:
        pending: set[asyncio.Task[dict[str, Any]]] = set()

        async def run_and_score(sample: Sample) -> dict[str, Any]:
            return await score_result(await pipeline.run_query(sample), scorer, models, proposals=proposals)

        iterator = iter(todo)
        while True:
            while len(pending) < concurrency and not (stop and stop.is_set()) and (sample := next(iterator, None)) is not None:
                pending.add(asyncio.ensure_future(run_and_score(sample)))
            if not pending:
                break
            finished_now, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished_now:
                record = task.result()
                writer.write(record)
                records.append(record)
                if on_record is not None:
                    on_record(record)
    order = {s.id: i for i, s in enumerate(samples)}
    records.sort(key=lambda r: order.get(r["id"], len(order)))
    summary = summarize(label, runlog, records, time.perf_counter() - start, resumed=len(done))
    if hasattr(scorer, "summary"):
        summary.extra.update(scorer.summary(records))
    return summary


def _rewrite_whole(path: Path, header: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    """Drop a torn last line left by a kill, so appending starts on a clean line."""
    import json

    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for obj in (header, *records):
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    tmp.replace(path)
