"""What a server serves: topologies bound to their ModelSets, each with a RunLog of the queries it
answered and, when tracking is on, an MLflow run with a trace per query.

The machinery is a run's: the experiment's endpoints, prices, call cache, per-endpoint limits,
retries and hard budget (all in its ModelSet), and a run folder `<output>/<name>/<time>/` holding
`served.jsonl` (or `served__<label>.jsonl` when an experiment serves several topologies).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation import FINISHED, Experiment, ExperimentSpec, git_commit, run_folder
from moa_lab.models import Budget, ModelSet
from moa_lab.pipeline import Pipeline
from moa_lab.topology import TopologySpec, load_topology, read_yaml
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter, Tracker


class ServedTopology:
    """One topology behind the server: `answer` runs a query and records it in the RunLog (and the
    tracker, on a worker thread so MLflow never stalls the event loop)."""

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        models: ModelSet,
        *,
        runlog: Path,
        experiment: str = "",
        tracker: Tracker | None = None,
        trace: bool = True,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.pipeline = Pipeline(spec, models)  # a bad spec or a missing key fails before serving starts
        self.runlog = runlog
        header = RunHeader(label=name, experiment=experiment, topology=spec.model_dump(mode="json"), samples=0)
        self._writer = RunLogWriter(runlog, header)
        self._tracker = tracker
        self._trace = trace
        self._executor: ThreadPoolExecutor | None = None
        self.answered = 0
        self.failed = 0
        self.paid_usd = 0.0
        if tracker is not None:
            tracker.start_run(name, params={"topology": spec.model_dump(mode="json")},
                              tags={"moa_lab.kind": "serve", "topology": name, "run_folder": str(runlog.parent), **(tags or {})})
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="moa-serve-tracking")

    @property
    def models(self) -> ModelSet:
        return self.pipeline.models

    async def answer(self, sample: Sample) -> QueryRecord:
        """Run one query; failures are in the record (never raised), which is logged either way."""
        record = await self.pipeline.run_query(sample)
        self._writer.write(record)
        self.answered += record.answer is not None
        self.failed += record.answer is None
        self.paid_usd += record.cost.paid_usd
        if self._executor is not None and self._tracker is not None:
            self._executor.submit(self._tracker.log_query, record, trace=self._trace)
        return record

    def close(self) -> None:
        """Close the RunLog and end the tracker run (after its pending traces)."""
        self._writer.close()
        if self._executor is not None and self._tracker is not None:
            self._executor.shutdown(wait=True)
            self._tracker.log_metrics({"served": self.answered, "failed": self.failed, "paid_usd": self.paid_usd})
            self._tracker.log_artifact(self.runlog)
            self._tracker.end_run()


@dataclass
class Service:
    """The served topologies by name and what they own: ModelSets and run folders."""

    topologies: dict[str, ServedTopology]
    model_sets: list[ModelSet] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    async def aclose(self) -> None:
        """Close every RunLog and tracker run, mark the run folders finished, stop every client
        (the embedded server included)."""
        for served in self.topologies.values():
            await asyncio.to_thread(served.close)
        for folder in self.folders:
            (folder / FINISHED).touch()
        for models in self.model_sets:
            await models.aclose()


def load_service(
    sources: list[str],
    *,
    output: Path | None = None,
    budget_usd: float | None = None,
    use_cache: bool | None = None,
    track: bool | None = None,
    tracking_uri: str | None = None,
) -> Service:
    """Build the topologies named by `sources`: experiment files (their topology, or each of their
    `topologies`), topology files or preset names. Served names: an experiment's `name` (`name/label`
    when it has several topologies), a topology's own `name`. `budget_usd` is one cap shared by all;
    `track` None follows each experiment's `tracking:` section, True/False forces MLflow on/off."""
    out = str(output) if output else None
    experiments: list[tuple[Experiment, bool]] = []
    bare: list[TopologySpec] = []
    for source in sources:
        data = read_yaml(source) if source.endswith((".yaml", ".yml")) else None
        if isinstance(data, dict) and ("topology" in data or "topologies" in data):
            experiments.append((Experiment.load(source, output=out), False))
        else:
            bare.append(load_topology(source, where=source))
    twice = sorted({t.name for t in bare if [b.name for b in bare].count(t.name) > 1})
    if twice:
        raise ConfigError(f"two topologies are named {twice[0]!r}: serve each under its own name (`name:` in a topology file)")
    if bare:  # bare topologies share one ModelSet and one run folder, named after them
        name = bare[0].name if len(bare) == 1 else "serve"
        spec = ExperimentSpec(name=name, topologies={t.name: t.model_dump(mode="json") for t in bare}, output=out)
        experiments.append((Experiment(spec, Path.cwd(), "command line"), True))
    budget = Budget(usd=budget_usd) if budget_usd is not None else None
    service = Service({})
    try:
        for exp, is_bare in experiments:
            _add(service, exp, is_bare, budget=budget, use_cache=use_cache, track=track, tracking_uri=tracking_uri)
    except BaseException:
        for served in service.topologies.values():
            served.close()
        raise
    return service


def _add(service: Service, exp: Experiment, bare: bool, *, budget: Budget | None, use_cache: bool | None,
         track: bool | None, tracking_uri: str | None) -> None:
    topologies = exp.topologies() if exp.spec.topologies else {"topology": exp.topology}
    names = {label: label if bare else exp.spec.name if len(topologies) == 1 else f"{exp.spec.name}/{label}"
             for label in topologies}
    clash = sorted(set(names.values()) & set(service.topologies))
    if clash:
        raise ConfigError(f"{exp.source}: a topology named {clash[0]!r} is already served; rename one (`name:`)")
    models = exp.model_set(use_cache=use_cache, budget=budget)
    service.model_sets.append(models)
    folder = run_folder(exp, resume=False)
    service.folders.append(folder)
    tracked = ("tracking" in exp.spec.model_fields_set and exp.spec.tracking.mlflow) if track is None else track
    commit = git_commit(exp.folder)
    for label, spec in topologies.items():
        assert spec is not None
        tracker = None
        if tracked:
            from moa_lab.tracking import MlflowTracker

            tracker = MlflowTracker(tracking_uri=tracking_uri or exp.spec.tracking.tracking_uri,
                                    experiment=exp.spec.tracking.experiment or exp.spec.name,
                                    project_root=exp.project, traces=exp.spec.tracking.traces is not False)
        runlog = folder / ("served.jsonl" if len(topologies) == 1 else f"served__{label}.jsonl")
        service.topologies[names[label]] = ServedTopology(
            names[label], spec, models, runlog=runlog, experiment=exp.spec.name, tracker=tracker,
            tags={"git_commit": commit},
        )
