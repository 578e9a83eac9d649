"""An evaluation experiment: every topology on every group of the benchmark, each a RunLog and,
when tracking is on, an MLflow run nested under one run for the experiment."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab.benchmarks import builtin_task, load_alpaca_eval, load_jsonl, load_mt_bench, second_turn
from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation._evaluate import EvalSummary, evaluate
from moa_lab.evaluation._experiment import Experiment
from moa_lab.models import ModelSet
from moa_lab.registry import build
from moa_lab.scoring import Scorer


@dataclass(frozen=True)
class Group:
    """Samples scored the same way: one built-in task, or a whole dataset (task None)."""

    task: str | None
    samples: list[Sample]
    scorer: Scorer


def build_scorer(source: str | dict[str, Any], *, numeric: bool = False) -> Scorer:
    """A scorer by name or `{kind: NAME, ...arguments}`; `auto` is numeric or exact by the data."""
    if source == "auto":
        source = "numeric" if numeric else "exact"
    if isinstance(source, str):
        return build("scorer", source, where="scorer")
    args = {k: v for k, v in source.items() if k != "kind"}
    return build("scorer", str(source.get("kind")), args, where="scorer")


def groups(exp: Experiment) -> list[Group]:
    """The benchmark's groups of samples, each with its scorer."""
    bench = exp.spec.benchmark
    if bench is None:
        raise ConfigError(f"{exp.source}: `moa-lab eval` needs a benchmark")
    scorer = exp.spec.scorer
    if bench.kind == "builtin":
        out = []
        for name in bench.tasks or ["opposites", "addition", "animal_legs", "subtraction"]:
            task = builtin_task(name, items=bench.items, seed=bench.seed)
            out.append(Group(name, list(task.items), build_scorer(scorer, numeric=task.numeric)))
        return out
    if bench.path is None:
        raise ConfigError(f"{exp.source}: benchmark.path is required for kind {bench.kind}")
    path = exp.path(bench.path)
    if bench.kind == "gsm8k":
        from moa_lab.benchmarks import load_gsm8k

        return [Group(None, load_gsm8k(path, limit=bench.limit), build_scorer(scorer, numeric=True))]
    if bench.kind == "alpaca_eval":
        return [Group(None, load_alpaca_eval(path, limit=bench.limit), build_scorer(scorer))]
    if bench.kind == "jsonl":
        return [Group(None, load_jsonl(path, limit=bench.limit), build_scorer(scorer))]
    if bench.kind == "mt_bench":
        folder = path if path.is_dir() else path.parent
        questions = folder / "question.jsonl" if path.is_dir() else path
        refs = folder / "reference_answer_gpt-4.jsonl"
        samples = load_mt_bench(questions, references=refs if refs.exists() else None, limit=bench.limit)
        return [Group("turn1", samples, build_scorer("none" if scorer == "auto" else scorer))]
    raise ConfigError(f"{exp.source}: benchmark kind {bench.kind!r} is not supported")


def dataset_hash(samples: list[Sample]) -> str:
    payload = json.dumps([[s.id, s.input, s.target] for s in samples], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def git_commit(folder: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def project_root(start: Path) -> Path:
    """The nearest folder holding `mlruns/` or `pyproject.toml`, else the current folder."""
    for folder in (start, *start.parents):
        if (folder / "mlruns").is_dir() or (folder / "pyproject.toml").is_file():
            return folder
    return Path.cwd()


async def run_suite(
    exp: Experiment,
    models: ModelSet,
    *,
    resume: bool = False,
    tracker: Any = None,
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[EvalSummary]:
    """Evaluate every (topology, group); returns the summaries in order."""
    out_dir = exp.output_dir() / exp.spec.name
    commit = git_commit(exp.folder)
    summaries = []
    parent = None
    if tracker is not None:
        tracker = _Background(tracker)
        parent = tracker.start_run(exp.spec.name, params={"experiment": exp.spec.model_dump(mode="json")},
                                   tags={"git_commit": commit, "moa_lab.kind": "experiment"})
    try:
        for group in groups(exp):
            for label, spec in exp.topologies(None if group.task == "turn1" else group.task).items():
                name = f"{label}__{group.task}" if group.task else label
                if on_start is not None:
                    on_start(name, len(group.samples))
                child = None
                if tracker is not None:
                    child = tracker.start_run(
                        name,
                        params={"topology": spec.model_dump(mode="json"), "scorer": group.scorer.name, "task": group.task or "",
                                "benchmark": exp.spec.benchmark.model_dump(mode="json") if exp.spec.benchmark else {}},
                        tags={"git_commit": commit, "dataset_hash": dataset_hash(group.samples), "topology": label},
                        parent_run_id=parent,
                    )

                traced = [0]
                limit = exp.spec.tracking.traces

                def record_hook(record: dict[str, Any], name: str = name) -> None:
                    if child is not None:
                        trace = limit is True or (limit is not False and traced[0] < int(limit))
                        traced[0] += trace
                        tracker.log_query(record, trace=trace)
                    if on_record is not None:
                        on_record(name, record)

                summary = await evaluate(
                    spec, group.samples, models, group.scorer, runlog=out_dir / f"{name}.jsonl", label=name,
                    header={"experiment": exp.spec.name, "task": group.task}, resume=resume,
                    concurrency=exp.spec.concurrency, on_record=record_hook, stop=stop,
                )
                summaries.append(summary)
                if group.task == "turn1" and not (stop is not None and stop.is_set()):
                    # MT-Bench: the second question is asked in the conversation of the first answer
                    from moa_lab.tracking import read_runlog

                    answers = {r["id"]: r["answer"] for r in read_runlog(summary.runlog)[1] if r.get("answer") is not None}
                    turn2 = [second_turn(smp, answers[smp.id]) for smp in group.samples if smp.id in answers]
                    summaries.append(await evaluate(
                        spec, turn2, models, group.scorer, runlog=out_dir / f"{label}__turn2.jsonl", label=f"{label}__turn2",
                        header={"experiment": exp.spec.name, "task": "turn2"}, resume=resume,
                        concurrency=exp.spec.concurrency, on_record=record_hook, stop=stop,
                    ))
                if child is not None:
                    await tracker.drain()
                    tracker.log_metrics(summary.metrics())
                    tracker.log_artifact(summary.runlog)
                    tracker.end_run(status="KILLED" if stop is not None and stop.is_set() else "FINISHED")
                if stop is not None and stop.is_set():
                    return summaries
    finally:
        if parent is not None:
            tracker.end_run()
    return summaries


class _Background:
    """Runs a tracker's per-query logging on one worker thread, so MLflow never stalls the event
    loop; `drain` waits for it before a run's metrics and end. Other calls run inline."""

    def __init__(self, tracker: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._tracker = tracker
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="moa-tracking")
        self._pending: list[Any] = []

    def log_query(self, record: dict[str, Any], *, trace: bool = True) -> None:
        self._pending.append(self._executor.submit(self._tracker.log_query, record, trace=trace))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            await asyncio.wrap_future(future)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)
