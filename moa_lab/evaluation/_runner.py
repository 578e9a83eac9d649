"""Run an experiment: every query through the topology, traces streamed to a RunLog."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moa_lab.core import ConfigError
from moa_lab.evaluation._experiment import Experiment
from moa_lab.models import ModelSet
from moa_lab.pipeline import Pipeline, QueryResult
from moa_lab.tracking import RunLogWriter


@dataclass
class RunSummary:
    """Totals of a run, as printed at its end."""

    runlog: Path
    queries: int = 0
    failed: int = 0
    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    unpriced: list[str] = field(default_factory=list)

    def add(self, result: QueryResult) -> None:
        self.queries += 1
        self.failed += result.error is not None
        self.calls += len(result.calls)
        self.cached_calls += sum(c.cached for c in result.calls)
        usage = result.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost_usd += result.cost.usd


async def run_experiment(
    experiment: Experiment,
    models: ModelSet,
    *,
    runlog: Path | None = None,
    on_result: Callable[[QueryResult], None] | None = None,
) -> RunSummary:
    """Run every sample; each finished query is appended to the RunLog at once."""
    if experiment.topology is None:
        raise ConfigError(f"{experiment.source}: `moa-lab run` needs a topology")
    samples = experiment.samples()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = runlog or experiment.output_dir() / f"{experiment.spec.name}-{stamp}.jsonl"
    summary = RunSummary(path)
    pipeline = Pipeline(experiment.topology, models)
    header = {
        "experiment": experiment.spec.name,
        "topology": experiment.topology.model_dump(mode="json"),
        "samples": len(samples),
    }
    start = time.perf_counter()
    with RunLogWriter(path, header) as writer:
        async for result in pipeline.stream(samples, concurrency=experiment.spec.concurrency):
            writer.write(result.to_dict())
            summary.add(result)
            if on_result is not None:
                on_result(result)
    summary.wall_s = time.perf_counter() - start
    summary.unpriced = sorted(models.prices.unpriced)
    return summary
