"""Running an experiment: every topology on every group of samples, each a RunLog in a new run
folder (one per invocation) and, when tracking is on, a tracker run nested under one for the
experiment. `resume=True` continues the latest unfinished run folder instead."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from moa_lab.benchmarks import second_turn
from moa_lab.core import ConfigError, collecting_less
from moa_lab.evaluation._evaluate import evaluate
from moa_lab.evaluation._experiment import Experiment
from moa_lab.evaluation._sources import Group, dataset_hash, groups
from moa_lab.evaluation._summary import EvalSummary, write_summary_csv
from moa_lab.models import ModelSet
from moa_lab.scoring import Scoring
from moa_lab.tracking import QueryRecord, Tracker, WriterLocked, lock_folder, read_runlog

FINISHED = "FINISHED"
"""The marker file of a run folder whose every RunLog is complete."""
LATEST = "latest"
RUN_IDS = "run.json"
"""The file of a run folder holding its tracker run ids."""


@dataclass
class ExperimentRun:
    """What `run_experiment` did: its run folder, a summary per RunLog, and whether it was stopped."""

    folder: Path
    summaries: list[EvalSummary]
    stopped: bool = False


def run_folder(exp: Experiment, *, resume: bool) -> Path:
    """A new run folder `<output>/<name>/<time>`, or with `resume` the latest unfinished one."""
    runs = exp.output_dir() / exp.spec.name
    if resume:
        unfinished = [f for f in _run_folders(runs) if not (f / FINISHED).exists()]
        if not unfinished:
            raise ConfigError(f"{exp.source}: no unfinished run under {runs} to resume; run it without --resume")
        return unfinished[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = runs / stamp, 1
    while True:
        try:
            folder.mkdir(parents=True)
            break
        except FileExistsError:  # two runs started in the same second
            n += 1
            folder = runs / f"{stamp}-{n}"
    link = runs / f".{LATEST}.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    link.replace(runs / LATEST)
    return folder


def _run_folders(runs: Path) -> list[Path]:
    if not runs.is_dir():
        return []
    return sorted((f for f in runs.iterdir() if f.is_dir() and not f.is_symlink() and f.name[:8].isdigit()),
                  key=lambda f: (f.name[:15], int(f.name[16:] or 1)))


async def run_experiment(
    exp: Experiment,
    models: ModelSet,
    *,
    resume: bool = False,
    keep_failed: bool = False,
    tracker: Tracker | None = None,
    on_record: Callable[[str, QueryRecord], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    folder: Path | None = None,
    summary: Callable[[Path], list[Path]] | None = None,
) -> ExperimentRun:
    """Evaluate every (topology, group) into a run folder (`folder`, else a new one, else with
    `resume` the latest unfinished); `stop` ends it after the queries in flight.

    The run folder is locked while it runs: a second process resuming it is refused before any
    call. Resumed, failed samples are run again unless `keep_failed`. With a tracker, the parent
    run gets every run's metrics, `summary.csv` and the files `summary` writes from the run folder
    (the CLI passes the HTML report and its figures)."""
    sources = groups(exp)  # bad inputs fail before any folder, store or run is made
    check_prices(exp, models, sources)
    folder = folder or run_folder(exp, resume=resume)
    lock = lock_folder(folder)
    try:
        if tracker is not None:
            _mark_killed(tracker, exp, folder)
        with collecting_less():
            return await _run(exp, models, folder, sources, resume=resume, keep_failed=keep_failed, tracker=tracker,
                              on_record=on_record, on_start=on_start, stop=stop, summary=summary)
    finally:
        lock.release()


def check_prices(exp: Experiment, models: ModelSet, sources: list[Group]) -> None:
    """Under `models`' budget, refuse (one ConfigError naming them) the models without a price that
    the run would call, its topologies' and its judges', before any call, folder or store."""
    for group in sources:
        judge = Scoring(group.scorer).models() if group.scorer is not None else []
        for spec in exp.topologies(None if group.task == "turn1" else group.task).values():
            models.check_prices([*spec.models(), *judge])


async def _run(
    exp: Experiment,
    models: ModelSet,
    folder: Path,
    sources: list[Group],
    *,
    resume: bool,
    keep_failed: bool,
    tracker: Tracker | None,
    on_record: Callable[[str, QueryRecord], None] | None,
    on_start: Callable[[str, int], None] | None,
    stop: asyncio.Event | None,
    summary: Callable[[Path], list[Path]] | None,
) -> ExperimentRun:
    commit = git_commit(exp.folder)
    run = ExperimentRun(folder, [])
    background = _Background(tracker) if tracker is not None else None
    parent = None
    ids = _RunIds(folder)
    if tracker is not None:
        parent = tracker.start_run(exp.spec.name, params={"experiment": exp.spec.model_dump(mode="json")},
                                   tags={"git_commit": commit, "moa_lab.kind": "experiment", "run_folder": str(folder)},
                                   continue_run_id=ids.get(""))
        ids.set("", parent)
    stopped = lambda: stop is not None and stop.is_set()  # noqa: E731
    try:
        for group in sources:
            for label, spec in exp.topologies(None if group.task == "turn1" else group.task).items():
                name = f"{label}__{group.task}" if group.task else label
                if on_start is not None:
                    on_start(name, len(group.samples))
                turns = [(name, group.task, group.samples)]
                while turns:
                    run_name, task, samples = turns.pop(0)
                    if on_start is not None and run_name != name:
                        on_start(run_name, len(samples))
                    hook = _hook(run_name, background, exp.spec.tracking.traces, on_record)
                    if tracker is not None:  # each MT-Bench turn is a run of its own; a resumed run continues its own
                        params = {"topology": spec.model_dump(mode="json"), "scorer": group.scorer.name if group.scorer else "",
                                  "task": task or "",
                                  "benchmark": exp.spec.benchmark.model_dump(mode="json") if exp.spec.benchmark else {}}
                        tags = {"git_commit": commit, "dataset_hash": dataset_hash(samples), "topology": label}
                        ids.set(run_name, tracker.start_run(run_name, params=params, tags=tags, parent_run_id=parent,
                                                            continue_run_id=ids.get(run_name)))
                    result = await evaluate(
                        spec, samples, models, group.scorer, runlog=folder / f"{run_name}.jsonl", label=run_name,
                        experiment=exp.spec.name, task=task, resume=resume, keep_failed=keep_failed, concurrency=exp.spec.concurrency,
                        on_record=hook, stop=stop,
                    )
                    run.summaries.append(result)
                    if tracker is not None and background is not None:
                        await background.drain()
                        tracker.log_metrics(result.metrics())
                        tracker.log_artifact(result.runlog)
                        tracker.end_run(status="KILLED" if stopped() else "FINISHED")
                    if task == "turn1" and not stopped():
                        # MT-Bench: the second question is asked in the conversation of the first answer
                        answers = {r.id: r.answer.text for r in read_runlog(result.runlog).records if r.answer}
                        turn2 = [second_turn(s, answers[s.id]) for s in samples if s.id in answers]
                        turns.append((f"{label}__turn2", "turn2", turn2))
                if stopped():
                    run.stopped = True
                    break
            if run.stopped:
                break
        else:
            (folder / FINISHED).touch()
        if tracker is not None:
            _log_summary(tracker, run, summary)
    finally:
        if tracker is not None and parent is not None:
            tracker.end_run(status="KILLED" if stopped() else "FINISHED")
        if background is not None:
            background.close()
    return run


class _RunIds:
    """The tracker run ids of a run folder (`run.json`; "" is the experiment's run), so a resumed
    run continues its tracker runs instead of starting second ones."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RUN_IDS
        self.ids: dict[str, str] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, name: str) -> str | None:
        return self.ids.get(name)

    def set(self, name: str, run_id: str) -> None:
        self.ids[name] = run_id
        tmp = self.path.with_name(f".{RUN_IDS}.tmp")
        tmp.write_text(json.dumps(self.ids, indent=1))
        tmp.replace(self.path)


def _mark_killed(tracker: Tracker, exp: Experiment, folder: Path) -> None:
    """Tracker runs left RUNNING by a killed process (its unfinished folder is not locked) are marked killed."""
    for other in _run_folders(exp.output_dir() / exp.spec.name):
        if (other / FINISHED).exists() or not (other / RUN_IDS).exists():
            continue
        try:
            lock = lock_folder(other) if other != folder else None
        except WriterLocked:
            continue  # another process is running it
        try:
            tracker.mark_killed(_RunIds(other).ids.values())
        finally:
            if lock is not None:
                lock.release()


def _log_summary(tracker: Tracker, run: ExperimentRun, summary: Callable[[Path], list[Path]] | None) -> None:
    """The parent run's dashboard: every child's metrics as `<run>/<metric>`, the table as CSV, and
    whatever files `summary` makes from the run folder (the report's figures)."""
    metrics = {f"{s.label}/{k}": v for s in run.summaries for k, v in s.metrics().items() if v == v}  # NaN left out
    if metrics:
        tracker.log_metrics(metrics)
    table = run.folder / "summary.csv"
    write_summary_csv(table, run.summaries)
    tracker.log_artifact(table)
    if summary is not None and run.summaries:
        for path in summary(run.folder):
            tracker.log_artifact(path)


def _hook(
    name: str, background: _Background | None, traces: bool | int, on_record: Callable[[str, QueryRecord], None] | None
) -> Callable[[QueryRecord], None]:
    """Per record: mirror it to the tracker (traced for the first `traces`), then tell the caller."""
    traced = 0

    def hook(record: QueryRecord) -> None:
        nonlocal traced
        if background is not None:
            trace = traces is True or (traces is not False and traced < int(traces))
            traced += trace
            background.log_query(record, trace=trace)
        if on_record is not None:
            on_record(name, record)

    return hook


def git_commit(folder: Path) -> str:
    """The commit of the repository holding `folder` (logged with every run), or "unknown"."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


class _Background:
    """Runs a tracker's per-query logging on one worker thread, so MLflow never stalls the event
    loop; `drain` waits for it before a run's metrics and end."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="moa-tracking")
        self._pending: list[Future[None]] = []

    def log_query(self, record: QueryRecord, *, trace: bool) -> None:
        self._pending.append(self._executor.submit(self._tracker.log_query, record, trace=trace))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
