"""One trial: draw a topology once, evaluate exactly that topology on every group, record what ran.

On built-in tasks the drawn topology is bound to each task (`for_task`: the task's prompt format
and worked examples); the trial stores the drawn spec and the tasks it was bound to, and every
reader (the front, the exported experiment, a re-evaluation) derives the evaluated specs from them
the same way, so what is stored is what ran.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab.core import BudgetExceeded, this_process
from moa_lab.evaluation import EvalSummary, Experiment, Group, evaluate
from moa_lab.models import Admission, ModelSet
from moa_lab.pipeline import Pipeline, Prepared, QueryPlan
from moa_lab.scoring import Scoring
from moa_lab.search._config import COLUMNS, SearchConfig, study_dir
from moa_lab.search._space import suggest
from moa_lab.topology import TopologySpec, for_task, validate
from moa_lab.tracking import QueryRecord, read_runlog

VALUES = ("quality", "cost_per_query_usd", "latency_p50_s", "tokens_per_query", "failed")
"""What every trial records (the chosen objectives are some of these; `flops_per_query` when chosen)."""


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: the topology it drew, the built-in tasks it bound that topology to, its
    objectives, and a fingerprint of the samples it was evaluated on."""

    number: int
    spec: TopologySpec
    values: dict[str, float]
    tasks: tuple[str, ...] = ()
    samples_hash: str | None = None
    repeat_of: int | None = None
    """The earlier trial that evaluated the same spec (this one was answered from its record)."""

    def evaluated(self, task: str | None) -> TopologySpec:
        """The exact spec this trial ran on the samples of `task` (None: a benchmark without tasks)."""
        return evaluated_spec(self.spec, self.tasks, task)

    def topology_source(self) -> dict[str, Any]:
        """How an experiment file names what this trial evaluated: the spec itself, or, when it was
        bound to built-in tasks, `{preset: for-task, topology: spec}` (bound again per task)."""
        spec = self.spec.model_dump(mode="json")
        return {"preset": "for-task", "topology": spec} if self.tasks else spec

    @classmethod
    def from_trial(cls, trial: Any) -> TrialResult:
        """Read a finished Optuna trial's record."""
        attrs = trial.user_attrs
        return cls(trial.number, validate(TopologySpec, attrs["spec"]),
                   {k: attrs[k] for k in (*VALUES, "flops_per_query") if k in attrs},
                   tuple(attrs.get("tasks", ())), attrs.get("samples_hash"), attrs.get("repeat_of"))


def evaluated_spec(spec: TopologySpec, tasks: tuple[str, ...], task: str | None) -> TopologySpec:
    """`spec` bound to `task` when the trial binds its tasks, else `spec` as drawn."""
    return for_task(spec, task) if task is not None and task in tasks else spec


def bound_tasks(exp: Experiment, benchmark: list[Group], routed: bool) -> tuple[str, ...]:
    """The tasks a drawn topology is bound to: every group of a built-in benchmark (a router's
    proposers come from its artifact and run as trained, so a routed study binds none)."""
    builtin = exp.spec.benchmark is not None and exp.spec.benchmark.kind == "builtin"
    return tuple(g.task for g in benchmark if g.task is not None) if builtin and not routed else ()


def samples_hash(benchmark: list[Group]) -> str:
    """A fingerprint of every group's task and samples, in order (what a re-evaluation must match)."""
    payload = [[g.task, s.id, s.input, s.target] for g in benchmark for s in g.samples]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]


def runlog_name(number: int | str, task: str | None) -> str:
    """The RunLog (and label) of a trial's group: `trial-3__opposites`, or `trial-3` without tasks."""
    return f"trial-{number}__{task}" if task else f"trial-{number}"


async def evaluate_trial(exp: Experiment, number: int | str, spec: TopologySpec, tasks: tuple[str, ...], models: ModelSet,
                         folder: Path, benchmark: list[Group], limit: int | None = None,
                         stage: AdmittedStage | None = None) -> list[EvalSummary]:
    """Evaluate the trial's topology on every group (on the first `limit` samples of each); a later
    call with a larger limit resumes the same RunLogs, so the first stage is never paid twice.
    `stage`: the admission its queries are admitted from, and their plans."""
    out = []
    for group in benchmark:
        name = runlog_name(number, group.task)
        samples = group.samples[:limit] if limit else group.samples
        out.append(await evaluate(evaluated_spec(spec, tasks, group.task), samples, models, group.scorer,
                                  runlog=folder / f"{name}.jsonl", label=name, experiment=exp.spec.name, task=group.task,
                                  resume=True, concurrency=exp.spec.concurrency,
                                  budget=stage.admission if stage is not None else None,
                                  prepared=stage.prepared.get(name) if stage is not None else None,
                                  intervals=False))  # a trial is told means; its CIs come from its records
    return out


@dataclass(frozen=True)
class AdmittedStage:
    """A trial stage admitted on its worst case: the admission and its queries as they were
    prepared, by RunLog name (answered from the cache, or planned: not planned again)."""

    admission: Admission
    prepared: dict[str, Prepared]

    async def close(self) -> None:
        await self.admission.close()


async def admit_stage(number: int | str, spec: TopologySpec, tasks: tuple[str, ...], models: ModelSet, folder: Path,
                      benchmark: list[Group], limit: int | None = None) -> AdmittedStage | None:
    """Admit a trial's stage on its whole worst case: every query it has not run yet, every call
    of each (raises BudgetExceeded before any is sent when that does not fit). A query whose calls
    are all cached is answered from the cache while the stage is planned (a study's trials share
    most calls): it costs nothing and is not run again."""
    if models.budget is None:
        return None
    total = QueryPlan()
    prepared: dict[str, Prepared] = {}
    for group in benchmark:
        name = runlog_name(number, group.task)
        runlog = folder / f"{name}.jsonl"
        # a failed sample is run again (see `evaluate`), so it is planned again
        done = {r.id for r in read_runlog(runlog).records if r.error is None} if runlog.exists() else set()
        scoring = Scoring(group.scorer) if group.scorer is not None else None  # scored as `evaluate` scores it
        pipeline = Pipeline(evaluated_spec(spec, tasks, group.task), models, scoring=scoring)
        prepared[name] = pipeline.prepared
        for sample in (group.samples[:limit] if limit else group.samples):
            if sample.id not in done and (plan := await pipeline.prepare(sample)) is not None:
                total = total + plan
    return AdmittedStage(await models.budget.admit(total.usd, total.tokens), prepared)


def trial_values(summaries: list[EvalSummary], flops: float | None = None) -> dict[str, float]:
    """The trial's values over all groups, each group weighted by its samples (`flops`: the total,
    when it is an objective)."""
    n = sum(s.samples for s in summaries)
    values = {
        "quality": sum((s.quality.mean if s.quality else 0.0) * s.samples for s in summaries) / n,
        "cost_per_query_usd": sum(s.cost_per_query * s.samples for s in summaries) / n,
        "latency_p50_s": sum(s.critical_path_p50 * s.samples for s in summaries) / n,
        "tokens_per_query": sum(s.input_tokens + s.output_tokens for s in summaries) / n,
        "failed": float(sum(s.failed for s in summaries)),
    }
    return values | ({"flops_per_query": flops / n} if flops is not None else {})


def spec_key(spec: TopologySpec, tasks: tuple[str, ...]) -> str:
    """What makes two trials the same evaluation: the spec (not its name) and the tasks it is bound to."""
    payload = [spec.model_dump(mode="json", exclude={"name"}), list(tasks)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def trial_records(folder: Path, number: int | str) -> list[QueryRecord]:
    """Every query record of a trial's RunLogs (the one place search reads RunLogs)."""
    # trial-1.jsonl and trial-1__<task>.jsonl, not trial-12.jsonl
    runlogs = sorted([*folder.glob(f"trial-{number}.jsonl"), *folder.glob(f"trial-{number}__*.jsonl")])
    return [record for runlog in runlogs for record in read_runlog(runlog).records]


def worker_name() -> str:
    """This process as the trial's `worker` attribute: host:pid."""
    host, pid = this_process()
    return f"{host}:{pid}"


async def run_trial(exp: Experiment, config: SearchConfig, models: ModelSet, study: Any, trial: Any, benchmark: list[Group],
                    target: int, on_trial: Any) -> str:
    """Draw one topology, evaluate it (or answer it from an earlier trial's record), tell the study.

    Returns `new`, `repeat` (the spec was evaluated before: not paid, not counted) or `stop`
    (the budget is spent)."""
    import optuna

    state = optuna.trial.TrialState
    others = [t for t in study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING))
              if t.number != trial.number and "repeat_of" not in t.user_attrs]
    if len(others) >= target:  # another worker asked at the same moment: this one is surplus, do no work
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=state.PRUNED)
        return "new"
    trial.set_user_attr("worker", worker_name())
    spec = suggest(trial, config.space)
    tasks = bound_tasks(exp, benchmark, routed=config.space.router is not None)
    key = spec_key(spec, tasks)
    trial.set_user_attr("spec", spec.model_dump(mode="json"))
    trial.set_user_attr("tasks", list(tasks))
    trial.set_user_attr("key", key)
    earlier = next((t for t in study.get_trials(deepcopy=False, states=(state.COMPLETE,))
                    if t.user_attrs.get("key") == key and "repeat_of" not in t.user_attrs), None)
    if earlier is not None:
        trial.set_user_attr("repeat_of", earlier.number)
        for name in (*VALUES, "flops_per_query", "fidelity", "samples_hash"):
            if name in earlier.user_attrs:
                trial.set_user_attr(name, earlier.user_attrs[name])
        study.tell(trial, earlier.values)  # the sampler learns it again, the study neither pays nor counts it
        if on_trial is not None:
            on_trial(TrialResult.from_trial(study.get_trials(deepcopy=False)[trial.number]))
        return "repeat"
    folder = study_dir(exp)

    async def run(limit: int | None = None) -> dict[str, float]:
        stage = await admit_stage(trial.number, spec, tasks, models, folder, benchmark, limit)
        try:
            summaries = await evaluate_trial(exp, trial.number, spec, tasks, models, folder, benchmark, limit, stage)
        finally:
            if stage is not None:
                await asyncio.shield(stage.close())
        flops = None
        if "flops" in config.objectives:
            flops = sum(r.total_cost.flops for r in trial_records(folder, trial.number))
        return trial_values(summaries, flops)

    full, stopping = True, False
    refused_before = models.budget.refused if models.budget is not None else 0
    try:
        values = await run(config.subsample or None)
    except BudgetExceeded as exc:  # not admitted: nothing was sent, the trial fails with $0 spent
        trial.set_user_attr("refused", str(exc))
        study.tell(trial, state=state.FAIL)
        return "stop"
    if config.subsample:
        trial.set_user_attr("stage1_quality", values["quality"])
        full = _promoted(study, config, values["quality"], trial.number)
        if full:
            refused_before = models.budget.refused if models.budget is not None else 0
            try:
                values = await run()
            except BudgetExceeded as exc:  # the full stage does not fit: keep the first stage's result
                trial.set_user_attr("refused", str(exc))
                full, stopping = False, True
                refused_before = models.budget.refused if models.budget is not None else 0
    if full:
        trial.set_user_attr("samples_hash", samples_hash(benchmark))
    trial.set_user_attr("fidelity", "full" if full else "subsample")
    for name, value in values.items():
        trial.set_user_attr(name, value)
    if models.budget is not None:
        trial.set_user_attr("study_spent_usd", models.budget.spent_usd)
        if models.budget.refused > refused_before:
            study.tell(trial, state=state.FAIL)
            return "stop"
    if config.max_cost_per_query is not None:
        trial.set_constraint("max_cost_per_query", values["cost_per_query_usd"] - config.max_cost_per_query)
    if config.mode == "penalty":
        study.tell(trial, values["quality"] - config.cost_penalty * values["cost_per_query_usd"])
    else:
        study.tell(trial, [values[COLUMNS[o]] for o in config.objectives])
    if on_trial is not None:
        on_trial(TrialResult(trial.number, spec, values, tasks))
    return "stop" if stopping else "new"


def _promoted(study: Any, config: SearchConfig, quality: float, number: int) -> bool:
    """Whether a first-stage quality reaches the `promote` quantile of the earlier trials' first stage."""
    earlier = sorted(t.user_attrs["stage1_quality"] for t in study.get_trials(deepcopy=False)
                     if "stage1_quality" in t.user_attrs and t.number != number)
    if not earlier:
        return True
    return quality >= earlier[min(len(earlier) - 1, int(config.promote * len(earlier)))]
