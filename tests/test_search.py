"""Topology search: the space as define-by-run, a study under a small cap, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import optuna
import pytest
import yaml

from moa_lab import ConfigError
from moa_lab.evaluation import Experiment
from moa_lab.models import MemoryCache, Price, PriceTable
from moa_lab.search import SearchSpace, run_study, study_budget, study_dir, suggest
from moa_lab.search._space import subset_params
from moa_lab.search._trial import trial_records
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import read_runlog

POOL = ["fake/a", "fake/b", "fake/c", "fake/d"]


def test_space_turns_params_into_a_topology() -> None:
    space = SearchSpace(pool=tuple(POOL), layers=(1, 2), proposers=(2, 3), aggregators=("vote", "rank"),
                        aggregator_models=("fake/judge",), self_moa_k=(2, 4))
    weights0 = {"fake/a": 0.1, "fake/b": 0.9, "fake/c": 0.5, "fake/d": 0.7}
    params = {"family": "moa", "layers": 2, "aggregator": "rank", "aggregator.model": "fake/judge",
              "layer0.size": 3, **{f"layer0.w.{m}": w for m, w in weights0.items()},
              **subset_params("layer1", space.pool, space.proposer_range, ["fake/a", "fake/c"])}
    spec = suggest(optuna.trial.FixedTrial(params), space)
    # the size first, then its members: the highest weights, in pool order
    assert [[a.args["model"] for a in layer.proposers] for layer in spec.layers] == [["fake/b", "fake/c", "fake/d"], ["fake/a", "fake/c"]]
    assert spec.aggregator is not None and spec.aggregator.agent == "rank"
    selfmoa = suggest(optuna.trial.FixedTrial({"family": "self-moa", "self_moa.model": "fake/c", "self_moa.k": 3,
                                               "aggregator": "vote"}), space)
    assert [a.args["model"] for a in selfmoa.layers[0].proposers] == ["fake/c"] * 3


def test_space_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="layers"):
        SearchSpace(pool=("a",), layers=(0, 5))
    with pytest.raises(ValueError, match="aggregator_models"):
        SearchSpace(pool=("a", "b"), aggregators=("rank",))


def _experiment(tmp_path: Path, budget: float | None, trials: int = 8) -> Experiment:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(10)))
    body = {
        "name": "s", "output": str(tmp_path / "out"), "benchmark": {"kind": "jsonl", "path": str(data)},
        "scorer": "exact", "tracking": {"mlflow": False},
        "search": {"trials": trials, "budget_usd": budget, "space": {"pool": POOL, "proposers": [1, 3], "aggregators": ["vote"]}},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return Experiment.load(path)


def _models(exp: Experiment, client: ScriptedClient):  # type: ignore[no-untyped-def]
    models = exp.model_set(use_cache=False, budget=study_budget(exp))
    models.cache = MemoryCache()
    models.prices = PriceTable({m.split("/")[1]: Price(1000.0, 1000.0) for m in POOL})
    models.add_client("fake", client)
    return models


def test_study_under_a_small_cap_stops_and_keeps_finished_trials(tmp_path: Path) -> None:
    """A trial is admitted on the worst case of all its queries (here about $5.5 for one proposer
    answering 10 questions at $1000 per million tokens); one that does not fit fails unpaid."""
    client = ScriptedClient(responder=lambda r: "yes" if r.model in ("a", "c") else "no")
    exp = _experiment(tmp_path, budget=8.0)
    models = _models(exp, client)
    study = asyncio.run(run_study(exp, models))
    states = [t.state for t in study.trials]
    ran = [s for s in states if s != optuna.trial.TrialState.WAITING]  # baselines not reached stay enqueued
    assert optuna.trial.TrialState.FAIL in ran and ran[-1] == optuna.trial.TrialState.FAIL
    assert models.budget is not None and models.budget.spent_usd <= 8.0
    for failed in (t for t in study.trials if t.state == optuna.trial.TrialState.FAIL):
        assert "refused" in failed.user_attrs
        assert sum(r.cost.paid_usd for r in trial_records(study_dir(exp), failed.number)) == 0
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all({"quality", "cost_per_query_usd", "spec"} <= t.user_attrs.keys() for t in complete)
    assert len(complete) < 8


def test_study_resumes_without_repeating_trials(tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: "yes")
    exp = _experiment(tmp_path, budget=None, trials=3)
    study = asyncio.run(run_study(exp, _models(exp, client)))
    assert len(study.trials) == 3
    with pytest.raises(ConfigError, match="--resume"):
        asyncio.run(run_study(exp, _models(exp, client)))
    more = asyncio.run(run_study(exp, _models(exp, client), trials=5, resume=True))
    assert len(more.trials) == 5 and [t.number for t in more.trials] == [0, 1, 2, 3, 4]


def test_staged_fidelity_runs_the_full_set_only_for_promising_trials(tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: "yes" if r.model in ("a", "c") else "no")
    exp = _experiment(tmp_path, budget=None, trials=8)
    body = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    body["search"] |= {"subsample": 3, "promote": 0.75}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    exp = Experiment.load(tmp_path / "exp.yaml")
    study = asyncio.run(run_study(exp, _models(exp, client)))
    fidelity = [t.user_attrs["fidelity"] for t in study.trials]
    assert "subsample" in fidelity and "full" in fidelity
    for t in (t for t in study.trials if "repeat_of" not in t.user_attrs):
        records = read_runlog(tmp_path / "out" / "s" / "study" / f"trial-{t.number}.jsonl").records
        assert len(records) == (10 if t.user_attrs["fidelity"] == "full" else 3)
        assert len({r.id for r in records}) == len(records)  # the first stage is not redone


def test_space_searches_a_cascade_on_layer_one() -> None:
    from moa_lab.cli._search import describe
    from moa_lab.search._space import CascadeKnobs
    from moa_lab.topology import CascadeSpec

    space = SearchSpace(pool=tuple(POOL), layers=(1, 2), proposers=(4, 4), aggregators=("vote", "rank"),
                        aggregator_models=("fake/judge",), extractor="numeric",
                        cascade=CascadeKnobs(threshold=(0.5, 1.0), first=(2, 3), exits=(False, True)))
    one_layer = {"layers": 1, "aggregator": "vote"}
    spec = suggest(optuna.trial.FixedTrial({**one_layer, "cascade": True, "cascade.first": 2, "cascade.threshold": 0.75}), space)
    assert spec.layers[0].cascade == CascadeSpec(stages=(2,), threshold=0.75, extractor="numeric")
    assert "all 4 cascade 2,4≥0.75] -> vote" in describe(spec, space.pool)
    # a vote over one layer has nothing an exit could skip: the exit is not asked (FixedTrial would fail)
    off = suggest(optuna.trial.FixedTrial({**one_layer, "cascade": False}), space)
    assert off.layers[0].cascade is None
    ranked = suggest(optuna.trial.FixedTrial({"layers": 2, "aggregator": "rank", "aggregator.model": "fake/judge", "cascade": True,
                                              "cascade.first": 3, "cascade.threshold": 0.9, "cascade.exit": True}), space)
    assert ranked.layers[0].cascade == CascadeSpec(stages=(3,), threshold=0.9, extractor="numeric", exit=True)
    assert ranked.layers[1].cascade is None
    with pytest.raises(ValueError, match="agreement needs two answers"):
        CascadeKnobs(first=(1, 3))
    with pytest.raises(ValueError, match="threshold"):
        CascadeKnobs(threshold=(0.5, 1.5))


def test_a_study_searches_the_cascade_threshold_and_its_trials_call_in_stages(tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: "yes" if r.model in ("a", "b") else "no")
    path = tmp_path / "exp.yaml"
    _experiment(tmp_path, budget=None, trials=3)
    body = yaml.safe_load(path.read_text())
    body["search"]["space"] |= {"proposers": [4, 4], "cascade": {"threshold": [0.6, 1.0], "first": [2, 2], "optional": False}}
    path.write_text(yaml.safe_dump(body))
    exp = Experiment.load(path)
    study = asyncio.run(run_study(exp, _models(exp, client)))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3 and all(0.6 <= t.params["cascade.threshold"] <= 1.0 for t in complete)
    for trial in complete:
        records = trial_records(study_dir(exp), trial.number)
        # a and b agree: the first stage stops every query, c and d are never called
        assert records and all([(s.stage, s.proposals, s.agreed) for s in r.stages] == [(1, 2, True)] for r in records)
        assert all(sorted(c.model for c in r.calls) == ["fake/a", "fake/b"] for r in records)


def test_search_workers_share_the_idle_cores_among_their_embedded_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--workers 2` starts two worker processes that each start their own embedded server at once;
    each is told it is one of two, so each server takes half the idle cores (`default_threads`)."""
    import subprocess

    from typer.testing import CliRunner

    from moa_lab.cli import app
    from moa_lab.models.providers._embedded import WORKERS_ENV

    started: list[tuple[list[str], dict[str, str]]] = []

    class Worker:
        def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
            started.append((cmd, env))

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", Worker)
    _experiment(tmp_path, budget=None)
    body = yaml.safe_load((tmp_path / "exp.yaml").read_text())  # the pool's endpoint, never called here
    body["endpoints"] = {"fake": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    res = CliRunner().invoke(app, ["search", str(tmp_path / "exp.yaml"), "--workers", "2"], env={"MOA_LAB_CACHE_DIR": str(tmp_path / "cache")})
    assert res.exit_code == 0, res.output
    assert len(started) == 2 and all(env[WORKERS_ENV] == "2" and "--resume" in cmd for cmd, env in started)
