"""Topology search with Optuna: every trial is an evaluation of a sampled topology, all trials share
the call cache (a call paid for once serves every topology that makes it) and one hard $ budget."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any

from moa_lab.core import ConfigError, collecting_less, process_gone
from moa_lab.evaluation import Experiment, groups
from moa_lab.models import Budget, ModelSet
from moa_lab.search._config import SearchConfig, search_config, search_split, study_dir
from moa_lab.search._front import pareto, write_front_plot
from moa_lab.search._space import SearchSpace, subset_params
from moa_lab.search._trial import TrialResult, run_trial, trial_records, worker_name

HEARTBEAT_S = 2
GRACE_S = 10 * HEARTBEAT_S
"""A trial whose heartbeat is this old is taken for a dead worker's (ten missed beats: a live worker
starved of CPU on a busy machine must not have its trial failed under it)."""
MAX_REPEATS = 50
"""Draws in a row that only repeat evaluated topologies before a worker stops (a small space is exhausted)."""
TRACES_PER_TRIAL = 5


def _storage(exp: Experiment, url: str | None) -> Any:
    """An RDB storage with heartbeats for a database URL (a killed worker's trial is failed by the
    others), else a journal file in the study folder (several local workers can share it)."""
    import optuna

    if url:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    folder = study_dir(exp)
    folder.mkdir(parents=True, exist_ok=True)
    from moa_lab.search._journal import JournalFile

    return optuna.storages.journal.JournalStorage(JournalFile(str(folder / "journal.log")))


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
    from moa_lab.models import LedgerBudget

    return LedgerBudget(ledger_url(exp, storage), f"study:{exp.spec.name}", config.budget_usd)  # type: ignore[return-value]


def _baselines(space: SearchSpace, models: ModelSet) -> list[dict[str, Any]]:
    """Params of the known baselines, tried first: the cheapest pool model alone, the dearest one
    alone (the best single at list price), every pool model in one voted layer (or, when the space
    caps the subset size below the pool, the space's maximum: the dearest that many) and, with
    Self-MoA, the dearest model sampled k times. A router study starts from the ends of its λ range."""
    if space.router is not None:
        return [{"router.lam": space.router.lam[0]}, {"router.lam": space.router.lam[1]}]
    by_price = sorted(space.pool, key=lambda m: (_list_price(models, m), space.pool.index(m)))
    base: dict[str, Any] = {"layers": 1} if space.layers[1] > 1 else {}
    if space.self_moa_k is not None:
        base["family"] = "moa"
    lo, hi = space.proposer_range
    out = []
    if lo == 1:
        out += [{**base, **subset_params("layer0", space.pool, (lo, hi), [m])} for m in dict.fromkeys((by_price[0], by_price[-1]))]
    widest = sorted(by_price[-hi:], key=space.pool.index)
    out.append({**base, **subset_params("layer0", space.pool, (lo, hi), widest)})
    if space.self_moa_k is not None:
        out.append({"family": "self-moa", "self_moa.model": by_price[-1], "self_moa.k": space.self_moa_k[1]})
    return out


def _list_price(models: ModelSet, model: str) -> float:
    """A model's list price per million input plus output tokens (what `cheapest` and `dearest` rank by)."""
    price = models.get(model).price
    return price.input_per_mtok + price.output_per_mtok


def open_study(exp: Experiment, models: ModelSet, *, storage: str | None = None, resume: bool = False) -> Any:
    """Create the study (with its baselines enqueued) or, with `resume`, load it."""
    import optuna

    config = search_config(exp)
    objectives = list(config.objectives) if config.mode == "pareto" else ["quality - penalty x usd"]
    directions = ["maximize" if o.startswith("quality") else "minimize" for o in objectives]
    sampler = optuna.samplers.NSGAIISampler(seed=config.seed) if config.mode == "pareto" else optuna.samplers.TPESampler(seed=config.seed)
    study = optuna.create_study(study_name=exp.spec.name, storage=_storage(exp, storage), directions=directions,
                                sampler=sampler, load_if_exists=True)
    if study.trials and not resume:
        raise ConfigError(f"study {exp.spec.name!r} already has {len(study.trials)} trials: continue it with --resume")
    stored = study.user_attrs.get("objectives")
    if stored is not None and stored != objectives:
        raise ConfigError(f"study {exp.spec.name!r} was run with objectives {study.user_attrs['objectives']}, "
                          f"not {objectives}: start a new study (another name) to change them")
    fail_orphaned_trials(study)
    if not study.trials:
        study.set_user_attr("objectives", objectives)
        study.set_user_attr("holdout", config.holdout)
        for params in _baselines(config.space, models):
            study.enqueue_trial(params, skip_if_exists=True)
    return study


async def run_study(exp: Experiment, models: ModelSet, *, trials: int | None = None, storage: str | None = None,
                    resume: bool = False, on_trial: Any = None, tracker: Any = None) -> Any:
    """Run trials until the study has `trials` complete ones (other workers' included); returns it.

    Trials are asked and told one at a time on this event loop; several processes may run this on
    one study. The study stops cleanly when its budget cannot pay for a trial's calls: that trial
    is marked failed, the finished ones stay. `on_trial` gets each finished trial's `TrialResult`.
    """
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
                                   tags={"moa_lab.kind": "study", "study": exp.spec.name, "worker": worker_name()})

    def log_trial(result: TrialResult) -> None:
        if tracker is not None and result.repeat_of is None:
            tracker.start_run(f"trial-{result.number}", params={"topology": result.topology_source()},
                              tags={"study": exp.spec.name, "trial": str(result.number)}, parent_run_id=parent)
            tracker.log_metrics(result.values)
            for i, record in enumerate(trial_records(study_dir(exp), result.number)):  # every query in the table, a few traced
                tracker.log_query(record, trace=i < TRACES_PER_TRIAL)
            tracker.end_run()
        if on_trial is not None:
            on_trial(result)

    try:
        with collecting_less():
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
    exp = search_split(exp, config)
    benchmark = groups(exp)  # loaded once for every trial of this worker
    repeats = 0
    while True:
        if heartbeat:
            optuna.storages.fail_stale_trials(study)
        else:
            fail_orphaned_trials(study)
        counts = [t.state for t in study.get_trials(deepcopy=False) if "repeat_of" not in t.user_attrs]
        complete, running = counts.count(state.COMPLETE), counts.count(state.RUNNING)
        if complete >= target or (complete + running >= target and not heartbeat):
            break
        if complete + running >= target:  # wait: a running trial may belong to a dead worker
            await asyncio.sleep(HEARTBEAT_S)
            continue
        if repeats >= MAX_REPEATS:
            warnings.warn(f"study {exp.spec.name!r}: {repeats} draws in a row repeated evaluated topologies; "
                          f"stopping at {complete} trials (the space may hold no more)", stacklevel=1)
            break
        trial = study.ask()
        if heartbeat:  # beat at once: a trial with no heartbeat yet is never found stale
            study._storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
        pulse = _Pulse(study, trial) if heartbeat else None
        try:
            status = await run_trial(exp, config, models, study, trial, benchmark, target, on_trial)
        finally:
            if pulse is not None:
                pulse.stop()
        if status == "stop":
            break
        repeats = repeats + 1 if status == "repeat" else 0


class _Pulse:
    """A running trial's heartbeat, on its own thread: a busy event loop (planning, scoring) must
    not let other workers take a live trial for a dead one."""

    def __init__(self, study: Any, trial: Any) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(study, trial), name="moa-heartbeat", daemon=True)
        self._thread.start()

    def _run(self, study: Any, trial: Any) -> None:
        while True:
            study._storage.record_heartbeat(trial._trial_id)  # noqa: SLF001 - optuna's heartbeat API is on the storage
            if self._stopped.wait(HEARTBEAT_S):
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def fail_orphaned_trials(study: Any) -> list[int]:
    """Fail the RUNNING trials whose worker (`host:pid`, on this host) is gone; their numbers.

    Heartbeats do this for RDB storages; optuna's journal storage has none, so a killed worker's
    trial would stay RUNNING for good and a resumed study would wait for it."""
    import optuna

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if pid.isdigit() and process_gone(worker_host, int(pid)):
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)  # noqa: SLF001
            failed.append(trial.number)
    return failed


def load_study(exp: Experiment, storage: str | None = None) -> Any:
    """The experiment's existing study (from the default journal, or `storage`)."""
    import optuna

    return optuna.load_study(study_name=exp.spec.name, storage=_storage(exp, storage))
