"""A study stores exactly what it evaluated, and its exported best experiment reproduces the trial.

The quickstart study (experiments/search_quickstart.yaml: built-in tasks, self-MoA, layers,
synthesize) runs with its embedded model swapped for a scripted one; the slow test runs the file as is.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import optuna
import pytest
import yaml

from moa_lab.benchmarks import builtin_task
from moa_lab.core import ConfigError, Request
from moa_lab.evaluation import Experiment, groups, run_experiment
from moa_lab.models import MemoryCache
from moa_lab.search import TrialResult, export_best, pareto, run_study, study_budget, study_dir
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import read_runlog

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "search_quickstart.yaml"


def _answers(tasks: list[str], items: int) -> dict[str, str]:
    return {s.input: str(s.target) for t in tasks for s in builtin_task(t, items=items).items}


def _responder(gold: dict[str, str]):  # type: ignore[no-untyped-def]
    """Right on about two calls in three, decided by a hash of the whole request (so temperature,
    sample index, examples and proposals all change the outcome, deterministically)."""

    def answer(request: Request) -> str:
        text = request.prompt if request.prompt is not None else "\n".join(m.content for m in request.messages)
        key = f"{request.model}|{request.sampling}|{text}".encode()
        right = next((a for q, a in gold.items() if q in text), "?")
        return right if hashlib.sha256(key).digest()[0] % 3 else "wrong"

    return answer


def _quickstart(tmp_path: Path, *, items: int, trials: int, holdout: bool = True) -> Experiment:
    """The quickstart study with its `local` model renamed `fake/local`, written under tmp_path
    (without `holdout`: no held-out split, so `moa-lab pareto` has nothing to re-evaluate)."""
    body = yaml.safe_load(QUICKSTART.read_text())
    body["benchmark"]["items"] = items
    body["output"] = "out"
    body["tracking"] = {"mlflow": False}
    space = body["search"]["space"]
    space["pool"] = [f"fake/{m}" for m in space["pool"]]
    space["aggregator_models"] = [f"fake/{m}" for m in space["aggregator_models"]]
    body["search"]["trials"] = trials
    body["search"].pop("budget_usd")  # the scripted model has no price
    if not holdout:
        body["search"].pop("holdout")
    (tmp_path / "project").mkdir()
    path = tmp_path / "project" / "search.yaml"
    path.write_text(yaml.safe_dump(body))
    return Experiment.load(path)


def _models(exp: Experiment, client: ScriptedClient):  # type: ignore[no-untyped-def]
    """The experiment's models on a fresh memory cache, with the scripted client as endpoint `fake`."""
    models = exp.model_set(use_cache=False, budget=study_budget(exp) if exp.spec.search else None)
    models.cache = MemoryCache()
    models.add_client("fake", client)
    return models


def _stored_equals_evaluated(exp: Experiment, trial: optuna.trial.FrozenTrial) -> None:
    result = TrialResult.from_trial(trial)
    tasks = exp.spec.benchmark.tasks  # type: ignore[union-attr]
    assert result.tasks == tuple(tasks)
    for task in tasks:
        header = read_runlog(study_dir(exp) / f"trial-{trial.number}__{task}.jsonl").header
        assert header.task == task
        assert header.topology == result.evaluated(task).model_dump(mode="json")


def test_quickstart_trials_store_what_they_ran_and_the_best_reproduces(tmp_path: Path) -> None:
    exp = _quickstart(tmp_path, items=6, trials=8)
    gold = _answers(exp.spec.benchmark.tasks, 6)  # type: ignore[union-attr, arg-type]
    study = asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=_responder(gold)))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "repeat_of" not in t.user_attrs]
    assert len(complete) == 8
    assert len({t.user_attrs["key"] for t in complete}) == 8  # no topology evaluated twice
    for trial in complete:
        _stored_equals_evaluated(exp, trial)
    # the binding is real: a one-layer trial's proposers carry the task's examples, which differ by task
    one_layer = next(TrialResult.from_trial(t) for t in complete if len(t.user_attrs["spec"]["layers"]) == 1)
    opposites, addition = (one_layer.evaluated(t).layers[0].proposers[0].args for t in ("opposites", "addition"))
    assert opposites["examples"] != addition["examples"] and "examples" not in one_layer.spec.layers[0].proposers[0].args

    best = pareto(study)[0]
    written = export_best(exp, best, exp.output_dir() / exp.spec.name)
    assert [p.name for p in written.topologies] == ["best_topology.opposites.yaml", "best_topology.addition.yaml"]
    again = Experiment.load(written.experiment)
    summaries = asyncio.run(run_experiment(again, _models(again, ScriptedClient(responder=_responder(gold))))).summaries
    assert [s.label for s in summaries] == ["best__opposites", "best__addition"]
    quality = sum(s.quality.mean * s.samples for s in summaries) / sum(s.samples for s in summaries)
    assert quality == best.values["quality"]
    for summary, task in zip(summaries, ("opposites", "addition")):
        assert read_runlog(summary.runlog).header.topology == best.evaluated(task).model_dump(mode="json")


def test_best_experiment_paths_are_relative_to_where_it_is_written(tmp_path: Path) -> None:
    data = tmp_path / "project" / "data" / "q.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(f'{{"id": "{i}", "input": "question {i}", "target": "yes"}}\n' for i in range(5)))
    body = {"name": "s", "output": "../runs", "benchmark": {"kind": "jsonl", "path": "../data/q.jsonl", "limit": 4},
            "scorer": "exact", "tracking": {"mlflow": False}, "cache": "memory",
            "search": {"trials": 3, "space": {"pool": ["fake/a", "fake/b"], "aggregators": ["vote"]}}}
    path = tmp_path / "project" / "experiments" / "s.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(body))
    exp = Experiment.load(path)
    study = asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=lambda r: "yes" if r.model == "a" else "no"))))
    best = pareto(study)[0]
    written = export_best(exp, best, tmp_path / "project" / "best")
    assert [p.name for p in written.topologies] == ["best_topology.yaml"]
    saved = yaml.safe_load(written.experiment.read_text())
    assert saved["benchmark"] == {"kind": "jsonl", "path": "../data/q.jsonl", "limit": 4}
    assert saved["output"] == "../runs" and "items" not in saved["benchmark"]
    assert saved["topologies"]["best"] == best.spec.model_dump(mode="json")
    (tmp_path / "project").rename(tmp_path / "moved")  # the folder moves with the project
    again = Experiment.load(tmp_path / "moved" / "best" / "best_experiment.yaml")
    assert [s.id for s in groups(again)[0].samples] == ["0", "1", "2", "3"]
    summaries = asyncio.run(run_experiment(again, _models(again, ScriptedClient(responder=lambda r: "yes" if r.model == "a" else "no")))).summaries
    assert summaries[0].samples == 4 and summaries[0].quality.mean == best.values["quality"]


def test_export_refuses_an_experiment_whose_samples_changed(tmp_path: Path) -> None:
    exp = _quickstart(tmp_path, items=3, trials=2)
    gold = _answers(exp.spec.benchmark.tasks, 3)  # type: ignore[union-attr, arg-type]
    study = asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=_responder(gold)))))
    best = pareto(study)[0]
    stale = TrialResult(best.number, best.spec, best.values, best.tasks, samples_hash="0" * 16)
    with pytest.raises(ConfigError, match="samples"):
        export_best(exp, stale, tmp_path / "best")


@pytest.mark.slow
def test_quickstart_on_the_embedded_model_reproduces(tmp_path: Path, cache_dir: Path) -> None:
    """The real quickstart file: its best experiment, evaluated again, gives the trial's quality."""
    body = yaml.safe_load(QUICKSTART.read_text())
    body |= {"output": str(tmp_path / "runs"), "tracking": {"mlflow": False}}
    body["benchmark"]["items"] = 5
    body["search"]["trials"] = 4
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(body))
    exp = Experiment.load(path)

    async def search():  # type: ignore[no-untyped-def]
        async with (models := exp.model_set(cache_dir=cache_dir, budget=study_budget(exp))):
            return await run_study(exp, models)

    study = asyncio.run(search())
    for trial in (t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "repeat_of" not in t.user_attrs):
        _stored_equals_evaluated(exp, trial)
    best = pareto(study)[0]
    again = Experiment.load(export_best(exp, best, tmp_path / "best").experiment)

    async def evaluate():  # type: ignore[no-untyped-def]
        async with (models := again.model_set(cache_dir=cache_dir)):
            return (await run_experiment(again, models)).summaries

    summaries = asyncio.run(evaluate())
    assert sum(s.quality.mean * s.samples for s in summaries) / sum(s.samples for s in summaries) == best.values["quality"]


def test_pareto_command_writes_the_files_it_names(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    exp = _quickstart(tmp_path, items=3, trials=3, holdout=False)  # the CLI cannot reach the scripted model to re-check
    gold = _answers(exp.spec.benchmark.tasks, 3)  # type: ignore[union-attr, arg-type]
    asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=_responder(gold)))))
    done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "pareto", "search.yaml"], cwd=exp.folder, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "moa-lab eval out/search-quickstart/best_experiment.yaml" in done.stdout
    folder = exp.folder / "out" / "search-quickstart"
    assert {p.name for p in folder.iterdir()} >= {"best_experiment.yaml", "best_topology.opposites.yaml",
                                                 "best_topology.addition.yaml", "pareto.png"}
