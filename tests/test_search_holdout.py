"""The held-out protocol: a seeded split the study never sees, the front re-checked on it with
intervals, and the exported best stating (and reproducing) the split it was judged on."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moa_lab.core import Sample
from moa_lab.evaluation import Experiment, groups, run_experiment, split_samples
from moa_lab.models import Price, PriceTable
from moa_lab.search import (best_at_most, best_single, cheapest_at_least, evaluated, export_best, pareto, recheck, run_study,
                            search_config, study_dir)
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import read_runlog

POOL = ["fake/a", "fake/b", "fake/c"]


def test_the_split_is_seeded_disjoint_and_independent_of_order() -> None:
    samples = [Sample(f"q{i}", "t", str(i)) for i in range(100)]
    search, held = split_samples(samples, 0.3, seed=0)
    assert len(held) == 30 and len(search) == 70 and not {s.id for s in search} & {s.id for s in held}
    again, held_again = split_samples(list(reversed(samples)), 0.3, seed=0)
    assert {s.id for s in held_again} == {s.id for s in held}
    assert {s.id for s in split_samples(samples, 0.3, seed=1)[1]} != {s.id for s in held}


def _experiment(tmp_path: Path) -> Experiment:
    data = tmp_path / "data" / "q.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(40)))
    body = {"name": "h", "benchmark": {"kind": "jsonl", "path": "../data/q.jsonl"}, "scorer": "exact", "tracking": {"mlflow": False},
            "search": {"trials": 5, "holdout": 0.25, "seed": 3, "space": {"pool": POOL, "proposers": [1, 3], "aggregators": ["vote"]}}}
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyproject.toml").write_text("")
    (tmp_path / "project" / "exp.yaml").write_text(yaml.safe_dump(body))
    return Experiment.load(tmp_path / "project" / "exp.yaml")


def _answer(request):  # type: ignore[no-untyped-def]
    skill = {"a": 0.9, "b": 0.6, "c": 0.3}[request.model]
    draw = hashlib.sha256(f"{request.model}|{request.messages[-1].content}".encode()).digest()[0] / 256
    return "yes" if draw < skill else "no"


def _models(exp: Experiment):  # type: ignore[no-untyped-def]
    models = exp.model_set(use_cache=False)
    models.cache = None
    models.prices = PriceTable({"a": Price(9.0, 9.0), "b": Price(3.0, 3.0), "c": Price(1.0, 1.0)})
    models.add_client("fake", ScriptedClient(responder=_answer))
    return models


def test_the_study_never_sees_the_held_out_questions_and_pareto_rechecks_on_them(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    config = search_config(exp)
    held_ids = {s.id for s in split_samples(groups(exp)[0].samples, 0.25, seed=3)[1]}
    study = asyncio.run(run_study(exp, _models(exp)))
    seen = {r.id for log in study_dir(exp).glob("trial-*.jsonl") for r in read_runlog(log).records}
    assert len(seen) == 30 and not seen & held_ids

    front = pareto(study)
    trials = evaluated(study)

    async def check():  # type: ignore[no-untyped-def]
        models = _models(exp)
        async with models:
            return await recheck(exp, config, models, front), await best_single(exp, config, models, trials)

    rows, ref = asyncio.run(check())
    for row, result in zip(rows, front):
        assert row.search is not None and row.held is not None
        assert row.search.quality.mean == result.values["quality"] and row.search.quality.n == 30
        assert row.held.quality.n == 10 and row.held.quality.low <= row.held.quality.mean <= row.held.quality.high
        assert row.optimism == row.search.quality.mean - row.held.quality.mean
        held_log = study_dir(exp) / "holdout" / f"trial-{result.number}.jsonl"
        assert {r.id for r in read_runlog(held_log).records} == held_ids
    # the best single model is chosen among all three alone on the search split: a (right 90% of the time)
    assert ref.spec.layers[0].proposers[0].args["model"] == "fake/a"
    assert ref.search is not None and ref.held is not None and ref.held.quality.n == 10
    found = cheapest_at_least([*rows, ref], ref.held.quality.mean)  # questions are answered on held-out numbers
    assert found is not None and found.held.usd_per_query <= ref.held.usd_per_query  # type: ignore[union-attr]
    cheapest = min(rows, key=lambda r: r.held.usd_per_query)  # type: ignore[union-attr]
    affordable = best_at_most(rows, cheapest.held.usd_per_query)  # type: ignore[union-attr]
    assert affordable is not None and affordable.held.quality.mean >= cheapest.held.quality.mean  # type: ignore[union-attr]


def test_the_exported_best_states_its_split_and_reproduces_from_another_folder(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    study = asyncio.run(run_study(exp, _models(exp)))
    best = pareto(study)[0]
    written = export_best(exp, best, tmp_path / "elsewhere" / "best")
    body = yaml.safe_load(written.experiment.read_text())
    assert body["benchmark"]["split"] == {"holdout": 0.25, "seed": 3, "part": "search", "exclude": []}
    assert not Path(body["benchmark"]["path"]).is_absolute()
    again = Experiment.load(written.experiment)
    [summary] = asyncio.run(run_experiment(again, _models(again))).summaries
    assert summary.samples == 30 and summary.quality is not None and summary.quality.mean == best.values["quality"]


@pytest.mark.slow
def test_the_replayed_gsm8k_study_is_unbiased_and_its_front_is_rechecked(data_dir: Path, tmp_path: Path) -> None:
    """The real GSM8K study file (fewer trials): every model drawn, sizes spread, no topology twice,
    and `moa-lab pareto` answers on held-out questions."""
    source = Path(__file__).resolve().parents[1] / "experiments" / "search_gsm8k_replay.yaml"
    body = yaml.safe_load(source.read_text())
    body["output"] = str(tmp_path / "runs")
    body["search"]["trials"] = 25
    path = source.parent / f".test-holdout-{os.getpid()}.yaml"  # beside the original: the same relative data paths
    path.write_text(yaml.safe_dump(body))
    try:
        env = {**os.environ, "COLUMNS": "240", "MOA_LAB_CACHE_DIR": str(tmp_path / "cache")}
        run = [sys.executable, "-m", "moa_lab.cli"]
        done = subprocess.run([*run, "search", str(path)], capture_output=True, text=True, env=env, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        exp = Experiment.load(path)
        import optuna

        study = optuna.load_study(study_name=exp.spec.name, storage=optuna.storages.journal.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(study_dir(exp) / "journal.log"))))
        first = [t for t in study.trials if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs]
        assert len(first) == 25 and len({t.user_attrs["key"] for t in first}) == 25
        drawn = [[a["model"] for a in t.user_attrs["spec"]["layers"][0]["proposers"]] for t in first]
        assert {m for d in drawn for m in d} == set(body["search"]["space"]["pool"])
        assert len({len(d) for d in drawn[3:]}) >= 5  # past the baselines, sizes spread over 1..18
        done = subprocess.run([*run, "pareto", str(path), "--match-quality", "best-single", "--max-cost",
                               "replay/gpt-4o-mini-2024-07-18", "--out", str(tmp_path / "best")],
                              capture_output=True, text=True, env=env, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "held-out quality" in done.stdout and "cheapest at or above held-out quality" in done.stdout
        assert "most accurate at or under held-out" in done.stdout
    finally:
        path.unlink()
