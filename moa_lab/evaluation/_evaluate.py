"""Evaluate a topology on samples: run, score (the answer and every layer's proposals), stream a RunLog.

A killed evaluation resumes with `resume=True`: samples already in the RunLog are not run again
(failed ones are, unless `keep_failed`), and calls finished before the kill come back from the call
cache, so nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation._summary import EvalSummary, summarize
from moa_lab.models import Admission, ModelSet
from moa_lab.pipeline import Pipeline, Prepared
from moa_lab.scoring import Scorer, Scoring, SummarizingScorer
from moa_lab.topology import TopologySpec
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter, read_runlog


def check_unique(samples: Sequence[Sample], where: str) -> None:
    """Refuse two samples with one id (a resume would lose one of them), naming both."""
    seen: dict[str, int] = {}
    for n, sample in enumerate(samples, 1):
        if sample.id in seen:
            raise ConfigError(f"{where}: samples {seen[sample.id]} and {n} have the same id {sample.id!r}; give each sample its own id")
        seen[sample.id] = n


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
    prepared: Prepared | None = None,
    intervals: bool = True,
) -> EvalSummary:
    """Run (and, with a scorer, score) every sample not already in `runlog`, appending each record
    as it finishes. Resumed, the samples that failed are run again, unless `keep_failed`.

    When `stop` is set, no new sample starts and the ones in flight finish and are written, so
    their calls are cached and paid once; `resume=True` later does the rest. `budget`: an admission
    (a search trial's stage) the queries are admitted from instead of the ModelSet's budget;
    `prepared`: its queries as the stage prepared them (see `Pipeline.prepare`), not planned again.
    Without `intervals` the summary's quality and oracle are means only (see `summarize`).
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
    scoring = Scoring(scorer, proposals=score_proposals) if scorer is not None else None
    # a bad spec or pool fails before the RunLog is touched; each query is scored inside its admission
    pipeline = Pipeline(spec, models, budget=budget, scoring=scoring, prepared=prepared)
    start = time.perf_counter()
    records = list(done)
    with RunLogWriter(runlog, header, done) as writer:
        async for record in pipeline.stream(todo, concurrency=concurrency):
            writer.write(record)
            records.append(record)
            if on_record is not None:
                on_record(record)
    order = {s.id: i for i, s in enumerate(samples)}
    records.sort(key=lambda r: order.get(r.id, len(order)))
    summary = summarize(label, runlog, records, time.perf_counter() - start, resumed=len(done), intervals=intervals)
    if isinstance(scorer, SummarizingScorer):
        summary.extra.update(scorer.summary(records))
    return summary
