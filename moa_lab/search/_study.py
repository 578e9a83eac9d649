"""Topology search with Optuna: every trial is an evaluation of a sampled topology, all trials share
the call cache (a call paid for once serves every topology that makes it) and one hard $ budget."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from moa_lab.core import ConfigError
from moa_lab.evaluation import EvalSummary, Experiment, Group, evaluate, groups
from moa_lab.models import Budget, ModelSet
from moa_lab.search._space import SearchSpace, suggest
from moa_lab.topology import TopologySpec, validate
from moa_lab.tracking import read_runlog

OBJECTIVES = ("quality", "cost_per_query_usd", "latency_p50_s")


class SearchConfig(BaseModel):
    """The `search:` section of an experiment: the space and how to search it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: SearchSpace
    trials: int = Field(30, ge=1)
    mode: Literal["pareto", "penalty"] = "pareto"
    """`pareto`: maximise quality, minimise $ per query and latency; `penalty`: maximise
    quality - cost_penalty x $ per query."""
    cost_penalty: float = 100.0
    budget_usd: float | None = Field(None, ge=0)
    max_cost_per_query: float | None = Field(None, ge=0)
    """A trial constraint: topologies dearer than this per query are infeasible."""
    seed: int = 0
    subsample: int | None = Field(None, ge=1)
    """Staged fidelity: every trial first runs on this many samples per group; only trials whose
    quality reaches the `promote` quantile of earlier trials' first-stage quality run on all."""
    promote: float = Field(0.5, ge=0, le=1)


@dataclass
class TrialResult:
    number: int
    spec: TopologySpec
    values: dict[str, float]


def search_config(exp: Experiment) -> SearchConfig:
    if exp.spec.search is None:
        raise ConfigError(f"{exp.source}: `moa-lab search` needs a search: section")
    config = validate(SearchConfig, exp.spec.search, source=exp.source, prefix="search")
    router = config.space.router
    if router is None:
        return config
    # a router's path is relative to the experiment file, like every other path in it
    space = config.space.model_copy(update={"router": router.model_copy(update={"path": str(exp.path(router.path))})})
    return config.model_copy(update={"space": space})


def study_dir(exp: Experiment) -> Path:
    return exp.output_dir() / exp.spec.name / "study"


HEARTBEAT_S = 2
TRACES_PER_TRIAL = 5


def _storage(exp: Experiment, url: str | None) -> Any:
    """An RDB storage with heartbeats for a database URL (a killed worker's trial is failed by the
    others), else a journal file in the study folder (several local workers can share it)."""
    import optuna

    if url:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S)
    folder = study_dir(exp)
    folder.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "journal.log"))
    return optuna.storages.journal.JournalStorage(backend)


def ledger_url(exp: Experiment, storage: str | None) -> str:
    """Where the study's shared budget lives: the storage's database, or a sqlite file beside the journal."""
    if storage:
        return storage
    study_dir(exp).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{study_dir(exp) / 'budget.sqlite'}"


def study_budget(exp: Experiment, storage: str | None = None) -> Budget | None:
    """The study's hard cap as a ledger every worker shares (None when the study has no budget)."""
    config = search_config(exp)
    if config.budget_usd is None:
        return None
    from moa_lab.search._ledger import LedgerBudget

    return LedgerBudget(ledger_url(exp, storage), exp.spec.name, config.budget_usd)  # type: ignore[return-value]


def _baselines(space: SearchSpace, models: ModelSet) -> list[dict[str, Any]]:
    """Params of known baselines, tried first: the dearest pool model alone, every pool model in
    one layer (MoA-Lite), and the dearest model sampled k times (Self-MoA). A router study starts
    from the ends of its λ range (quality first, then cost first)."""
    if space.router is not None:
        return [{"router.lam": space.router.lam[0]}, {"router.lam": space.router.lam[1]}]
    dearest = max(space.pool, key=lambda m: models.get(m).price.output_per_mtok)
    base: dict[str, Any] = {"layers": 1} if space.layers[1] > 1 else {}
    if space.self_moa_k is not None:
        base["family"] = "moa"
    single = {**base, **{f"layer0.{m}": m == dearest for m in space.pool}}
    lite = {**base, **{f"layer0.{m}": True for m in space.pool}}
    out = [single, lite]
    if space.self_moa_k is not None:
        out.append({"family": "self-moa", "self_moa.model": dearest, "self_moa.k": space.self_moa_k[1]})
    return out


async def _evaluate_all(exp: Experiment, config: SearchConfig, trial: Any, models: ModelSet, folder: Path,
                        benchmark: list[Group], limit: int | None = None) -> list[EvalSummary]:
    """Evaluate the trial's topology on every group (on the first `limit` samples of each); a later
    call with a larger limit resumes the same RunLogs, so the first stage is never paid twice."""
    out = []
    for group in benchmark:
        name = f"trial-{trial.number}__{group.task}" if group.task else f"trial-{trial.number}"
        builtin = group.task if exp.spec.benchmark is not None and exp.spec.benchmark.kind == "builtin" else None
        spec = suggest(trial, config.space, task=builtin)
        samples = group.samples[:limit] if limit else group.samples
        out.append(await evaluate(spec, samples, models, group.scorer, runlog=folder / f"{name}.jsonl",
                                  label=name, resume=True, concurrency=exp.spec.concurrency))
    return out


def _promoted(study: Any, config: SearchConfig, quality: float, number: int) -> bool:
    """Whether a first-stage quality reaches the `promote` quantile of the earlier trials' first stage."""
    earlier = sorted(t.user_attrs["stage1_quality"] for t in study.get_trials(deepcopy=False)
                     if "stage1_quality" in t.user_attrs and t.number != number)
    if not earlier:
        return True
    return quality >= earlier[min(len(earlier) - 1, int(config.promote * len(earlier)))]


def _values(summaries: list[EvalSummary]) -> dict[str, float]:
    n = sum(s.samples for s in summaries)
    return {
        "quality": sum(s.quality.mean * s.samples for s in summaries) / n,
        "cost_per_query_usd": sum(s.cost_per_query * s.samples for s in summaries) / n,
        "latency_p50_s": sum(s.critical_path_p50 * s.samples for s in summaries) / n,
        "failed": float(sum(s.failed for s in summaries)),
    }


def open_study(exp: Experiment, models: ModelSet, *, storage: str | None = None, resume: bool = False) -> Any:
    """Create the study (with its baselines enqueued) or, with `resume`, load it."""
    import optuna

    config = search_config(exp)
    directions = ["maximize", "minimize", "minimize"] if config.mode == "pareto" else ["maximize"]
    sampler = optuna.samplers.NSGAIISampler(seed=config.seed) if config.mode == "pareto" else optuna.samplers.TPESampler(seed=config.seed)
    study = optuna.create_study(study_name=exp.spec.name, storage=_storage(exp, storage), directions=directions,
                                sampler=sampler, load_if_exists=True)
    if study.trials and not resume:
        raise ConfigError(f"study {exp.spec.name!r} already has {len(study.trials)} trials: continue it with --resume")
    if not study.trials:
        for params in _baselines(config.space, models):
            study.enqueue_trial(params, skip_if_exists=True)
    return study


async def run_study(exp: Experiment, models: ModelSet, *, trials: int | None = None, storage: str | None = None,
                    resume: bool = False, on_trial: Any = None, tracker: Any = None) -> Any:
    """Run trials until the study has `trials` complete ones (other workers' included); returns it.

    Trials are asked and told one at a time on this event loop; several processes may run this on
    one study. The study stops cleanly when its budget cannot pay for a trial's calls: that trial
    is marked failed, the finished ones stay.
    """
    import optuna

    config = search_config(exp)
    if config.budget_usd is not None and models.budget is None:
        raise ConfigError(f"{exp.source}: the study has a budget_usd; build its models with "
                          "exp.model_set(budget=study_budget(exp, storage)) so every worker shares one ledger")
    study = open_study(exp, models, storage=storage, resume=resume)
    target = config.trials if trials is None else trials
    storage_ = study._storage  # noqa: SLF001 - optuna's heartbeat API lives on the storage
    heartbeat = getattr(storage_, "get_heartbeat_interval", lambda: None)() is not None
    parent = None
    if tracker is not None:
        parent = tracker.start_run(f"study {exp.spec.name}", params={"search": exp.spec.search or {}},
                                   tags={"moa_lab.kind": "study", "study": exp.spec.name, "worker": f"{socket.gethostname()}:{os.getpid()}"})

    def log_trial(number: int, spec: TopologySpec, values: dict[str, float]) -> None:
        if tracker is not None:
            tracker.start_run(f"trial-{number}", params={"topology": spec.model_dump(mode="json")},
                              tags={"study": exp.spec.name, "trial": str(number)}, parent_run_id=parent)
            tracker.log_metrics(values)
            for runlog in sorted(study_dir(exp).glob(f"trial-{number}*.jsonl")):
                for i, record in enumerate(read_runlog(runlog).records):  # every query in the table, a few traced
                    tracker.log_query(record, trace=i < TRACES_PER_TRIAL)
            tracker.end_run()
        if on_trial is not None:
            on_trial(number, spec, values)

    try:
        await _optimize(exp, config, models, study, target, heartbeat, log_trial)
    finally:
        if tracker is not None:
            front = pareto(study) if any(t.state.name == "COMPLETE" for t in study.trials) else []
            if front:
                tracker.log_metrics({"front_size": len(front), "best_quality": front[0].values["quality"]})
                tracker.log_artifact(write_front_plot(study, study_dir(exp) / "pareto.png"))
            tracker.end_run()
    return study


async def _optimize(exp: Experiment, config: SearchConfig, models: ModelSet, study: Any, target: int, heartbeat: bool,
                    on_trial: Any) -> None:
    import optuna

    state = optuna.trial.TrialState
    folder = study_dir(exp)
    benchmark = groups(exp)  # loaded once for every trial of this worker
    while True:
        if heartbeat:
            optuna.storages.fail_stale_trials(study)
        counts = [t.state for t in study.get_trials(deepcopy=False)]
        complete, running = counts.count(state.COMPLETE), counts.count(state.RUNNING)
        if complete >= target or (complete + running >= target and not heartbeat):
            break
        if complete + running >= target:  # wait: a running trial may belong to a dead worker
            await asyncio.sleep(HEARTBEAT_S)
            continue
        trial = study.ask()
        if heartbeat:  # beat at once: a trial with no heartbeat yet is never found stale
            study._storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
        pulse = asyncio.create_task(_beat(study, trial)) if heartbeat else None
        try:
            done = await _run_trial(exp, config, models, study, trial, folder, benchmark, target, on_trial)
        finally:
            if pulse is not None:
                pulse.cancel()
        if not done:
            break


async def _beat(study: Any, trial: Any) -> None:
    while True:
        study._storage.record_heartbeat(trial._trial_id)  # noqa: SLF001 - optuna's heartbeat API is on the storage
        await asyncio.sleep(HEARTBEAT_S)


async def _run_trial(exp: Experiment, config: SearchConfig, models: ModelSet, study: Any, trial: Any, folder: Path,
                     benchmark: list[Group], target: int, on_trial: Any) -> bool:
    """Evaluate one trial and tell the study; False when the study must stop (budget spent)."""
    import optuna

    state = optuna.trial.TrialState
    others = [t for t in study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING)) if t.number != trial.number]
    if len(others) >= target:  # another worker asked at the same moment: this one is surplus, do no work
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=state.PRUNED)
        return True
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    spec = suggest(trial, config.space)
    trial.set_user_attr("spec", spec.model_dump(mode="json"))
    refused_before = models.budget.refused if models.budget is not None else 0
    if config.subsample:
        first = _values(await _evaluate_all(exp, config, trial, models, folder, benchmark, limit=config.subsample))
        trial.set_user_attr("stage1_quality", first["quality"])
        full = _promoted(study, config, first["quality"], trial.number)
        values = _values(await _evaluate_all(exp, config, trial, models, folder, benchmark)) if full else first
        trial.set_user_attr("fidelity", "full" if full else "subsample")
    else:
        values = _values(await _evaluate_all(exp, config, trial, models, folder, benchmark))
        trial.set_user_attr("fidelity", "full")
    for key, value in values.items():
        trial.set_user_attr(key, value)
    if models.budget is not None:
        trial.set_user_attr("study_spent_usd", models.budget.spent_usd)
        if models.budget.refused > refused_before:
            study.tell(trial, state=state.FAIL)
            return False
    if config.max_cost_per_query is not None:
        trial.set_constraint([values["cost_per_query_usd"] - config.max_cost_per_query])
    if config.mode == "penalty":
        study.tell(trial, values["quality"] - config.cost_penalty * values["cost_per_query_usd"])
    else:
        study.tell(trial, [values["quality"], values["cost_per_query_usd"], values["latency_p50_s"]])
    if on_trial is not None:
        on_trial(trial.number, spec, values)
    return True


def pareto(study: Any) -> list[TrialResult]:
    """The front of the trials evaluated on the full set (for a single objective: the best),
    best quality first. Trials stopped at the first fidelity stage are left out."""
    import optuna

    full = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("fidelity", "full") == "full"]
    if len(study.directions) > 1:
        front = [t for t in full if not any(_dominates(o, t, study.directions) for o in full)]
    else:
        sign = 1 if study.direction.name == "MAXIMIZE" else -1
        front = [max(full, key=lambda t: sign * t.value)] if full else []
    results = [TrialResult(t.number, validate(TopologySpec, t.user_attrs["spec"]),
                           {k: t.user_attrs[k] for k in (*OBJECTIVES, "failed")}) for t in front]
    return sorted(results, key=lambda r: (-r.values["quality"], r.values["cost_per_query_usd"]))


def load_study(exp: Experiment, storage: str | None = None) -> Any:
    import optuna

    return optuna.load_study(study_name=exp.spec.name, storage=_storage(exp, storage))


def trial_table(study: Any) -> list[dict[str, Any]]:
    """Every finished trial: number, state, objectives, spec (as JSON)."""
    rows = []
    for t in study.trials:
        if "quality" in t.user_attrs:
            rows.append({"number": t.number, "state": t.state.name, **{k: t.user_attrs[k] for k in OBJECTIVES},
                         "spec": json.dumps(t.user_attrs["spec"])})
    return rows


def write_front_plot(study: Any, path: Path) -> Path:
    """Quality against $ per query for every complete trial, the Pareto front highlighted (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in study.trials if t.state.name == "COMPLETE" and "quality" in t.user_attrs]
    front = {r.number for r in pareto(study)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for on_front in (False, True):
        pts = [t for t in done if (t.number in front) == on_front]
        ax.scatter([t.user_attrs["cost_per_query_usd"] for t in pts], [t.user_attrs["quality"] for t in pts],
                   s=36 if on_front else 14, c="tab:red" if on_front else "tab:gray", label="Pareto front" if on_front else "trials")
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel("$ per query (list price)")
    ax.set_ylabel("quality")
    ax.set_title(study.study_name)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _dominates(a: Any, b: Any, directions: Any) -> bool:
    signs = [1 if d.name == "MAXIMIZE" else -1 for d in directions]
    better_or_equal = all(s * x >= s * y for s, x, y in zip(signs, a.values, b.values))
    return better_or_equal and any(s * x > s * y for s, x, y in zip(signs, a.values, b.values))
