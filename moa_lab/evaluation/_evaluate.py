"""Evaluate a topology on samples: run, score (the answer and every layer's proposals), stream a RunLog.

A killed evaluation resumes with `resume=True`: samples already in the RunLog are not run again
(failed ones are, unless `keep_failed`), and calls finished before the kill come back from the call
cache, so nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from moa_lab.core import ConfigError, Proposal, Sample, Score, StoreDamaged
from moa_lab.evaluation._summary import EvalSummary, summarize
from moa_lab.models import Admission, ModelSet
from moa_lab.pipeline import Pipeline
from moa_lab.scoring import Scorer, ScoringContext, SummarizingScorer
from moa_lab.topology import TopologySpec
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter, read_runlog


async def score_record(record: QueryRecord, scorer: Scorer, models: ModelSet, *, proposals: bool) -> QueryRecord:
    """The record with its score, each layer's proposals' scores and the judge's calls. A scorer or
    judge that raises fails this sample (its `error` and traceback are kept), never the run."""
    ctx = ScoringContext(models)
    update: dict[str, object] = {}
    try:
        if record.answer is None:
            update |= {"score": 0.0, "score_explanation": "query failed"}
        else:
            score = await scorer.score(record.sample, record.answer.text, ctx)
            update |= {"score": _value(score), "score_explanation": score.explanation}
        if proposals and record.layers:
            layers = [await _layer_scores(layer, record, scorer, ctx) for layer in record.layers]
            update |= {"proposal_scores": layers[0], "layer_scores": layers}
    except StoreDamaged:
        raise
    except Exception as exc:  # noqa: BLE001 - a scorer's bug on one sample must not stop the run
        failure = f"scorer failed: {type(exc).__name__}: {exc}"
        update = {"score": None, "score_explanation": failure, "error": record.error or failure,
                  "traceback": "\n".join(t for t in (record.traceback, traceback.format_exc()) if t)}
    return record.model_copy(update=update | {"judge_calls": ctx.calls})


def check_unique(samples: Sequence[Sample], where: str) -> None:
    """Refuse two samples with one id (a resume would lose one of them), naming both."""
    seen: dict[str, int] = {}
    for n, sample in enumerate(samples, 1):
        if sample.id in seen:
            raise ConfigError(f"{where}: samples {seen[sample.id]} and {n} have the same id {sample.id!r}; give each sample its own id")
        seen[sample.id] = n


async def _layer_scores(layer: list[Proposal], record: QueryRecord, scorer: Scorer, ctx: ScoringContext) -> list[float | None]:
    """Each proposal's score in layer order; a failed proposal scores 0."""
    scores = iter(await asyncio.gather(*(scorer.score(record.sample, p.text, ctx) for p in layer if p.ok)))
    return [_value(next(scores)) if p.ok else 0.0 for p in layer]


def _value(score: Score) -> float | None:
    return None if math.isnan(score.value) else score.value  # NaN: a judge could not decide


async def evaluate(
    spec: TopologySpec,
    samples: Sequence[Sample],
    models: ModelSet,
    scorer: Scorer | None,
    *,
    runlog: Path,
    label: str = "",
    experiment: str = "",
    task: str | None = None,
    resume: bool = False,
    keep_failed: bool = False,
    concurrency: int = 16,
    score_proposals: bool | None = None,
    on_record: Callable[[QueryRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    budget: Admission | None = None,
) -> EvalSummary:
    """Run (and, with a scorer, score) every sample not already in `runlog`, appending each record
    as it finishes. Resumed, the samples that failed are run again, unless `keep_failed`.

    When `stop` is set, no new sample starts and the ones in flight finish and are written, so
    their calls are cached and paid once; `resume=True` later does the rest. `budget`: an admission
    (a search trial's stage) the queries are admitted from instead of the ModelSet's budget.
    """
    label = label or spec.name
    check_unique(samples, label)
    header = RunHeader(label=label, experiment=experiment, task=task, topology=spec.model_dump(mode="json"),
                       scorer=scorer.name if scorer is not None else None, samples=len(samples))
    done: list[QueryRecord] = []
    if runlog.exists():
        if not resume:
            raise ConfigError(f"{runlog} exists: resume it with --resume, or remove it to start again")
        old = read_runlog(runlog)
        if not old.header.same_run(header):
            raise ConfigError(f"{runlog}: was written by another topology, scorer or task; it cannot be resumed with this one")
        header, done = old.header, [r for r in old.records if keep_failed or r.error is None]
    finished = {r.id for r in done}
    todo = (s for s in samples if s.id not in finished and not (stop is not None and stop.is_set()))
    proposals = (scorer is not None and not scorer.calls_models) if score_proposals is None else score_proposals

    async def finish(record: QueryRecord) -> QueryRecord:
        return await score_record(record, scorer, models, proposals=proposals) if scorer is not None else record

    pipeline = Pipeline(spec, models, budget=budget)  # a bad spec or pool fails before the RunLog is touched
    start = time.perf_counter()
    records = list(done)
    with RunLogWriter(runlog, header, done) as writer:
        async for record in pipeline.stream(todo, concurrency=concurrency, finish=finish):
            writer.write(record)
            records.append(record)
            if on_record is not None:
                on_record(record)
    order = {s.id: i for i, s in enumerate(samples)}
    records.sort(key=lambda r: order.get(r.id, len(order)))
    summary = summarize(label, runlog, records, time.perf_counter() - start, resumed=len(done))
    if isinstance(scorer, SummarizingScorer):
        summary.extra.update(scorer.summary(records))
    return summary
