"""Search without bias: every size and model reachable, repeats answered from their record, the
baselines tried first, the front on exactly the chosen objectives."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import optuna
import pytest
import yaml

from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment
from moa_lab.models import MemoryCache, Price, PriceTable
from moa_lab.search import SearchSpace, evaluated, pareto, run_study, search_config, suggest
from moa_lab.testing import ScriptedClient

POOL = [f"fake/m{i}" for i in range(8)]


def test_every_size_and_every_model_is_drawn() -> None:
    space = SearchSpace(pool=tuple(POOL), proposers=(1, 8))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = [[a.args["model"] for a in suggest(study.ask(), space).layers[0].proposers] for _ in range(120)]
    assert {len(d) for d in drawn} == set(range(1, 9))
    assert {m for d in drawn for m in d} == set(POOL)
    # the members of a size are not the pool's first ones: the last model is as reachable as the first
    singles = [d[0] for d in drawn if len(d) == 1]
    assert len(set(singles)) > 1


def _experiment(tmp_path: Path, *, pool: list[str], trials: int, proposers: list[int], **search: object) -> Experiment:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(10)))
    body = {"name": "s", "output": str(tmp_path / "out"), "benchmark": {"kind": "jsonl", "path": str(data)}, "scorer": "exact",
            "tracking": {"mlflow": False},
            "search": {"trials": trials, "space": {"pool": pool, "proposers": proposers, "aggregators": ["vote"]}, **search}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    return Experiment.load(tmp_path / "exp.yaml")


def _models(exp: Experiment, client: ScriptedClient, prices: dict[str, float]):  # type: ignore[no-untyped-def]
    models = exp.model_set(use_cache=False)
    models.cache = None  # no cache: a repeated evaluation would show up as calls
    models.prices = PriceTable({m.split("/")[1]: Price(usd, usd) for m, usd in prices.items()})
    models.add_client("fake", client)
    return models


def test_a_repeated_topology_is_answered_from_its_record(tmp_path: Path) -> None:
    pool = ["fake/a", "fake/b"]  # three topologies in all: {a}, {b}, {a, b}
    exp = _experiment(tmp_path, pool=pool, trials=3, proposers=[1, 2])
    client = ScriptedClient(responder=lambda r: "yes" if r.model == "a" else "no")
    study = asyncio.run(run_study(exp, _models(exp, client, {"fake/a": 1.0, "fake/b": 2.0})))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    first = [t for t in done if "repeat_of" not in t.user_attrs]
    assert len(first) == 3 and len({t.user_attrs["key"] for t in first}) == 3
    assert len(client.requests) == 10 * (1 + 1 + 2)  # each topology paid once, however often it was drawn
    for t in done:
        if "repeat_of" in t.user_attrs:
            assert t.values == study.trials[t.user_attrs["repeat_of"]].values


def test_an_exhausted_space_stops_instead_of_looping(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, pool=["fake/a", "fake/b"], trials=5, proposers=[1, 2])
    client = ScriptedClient(responder=lambda r: "yes")
    with pytest.warns(UserWarning, match="repeated evaluated topologies"):
        study = asyncio.run(run_study(exp, _models(exp, client, {"fake/a": 1.0, "fake/b": 2.0})))
    assert sum(1 for t in study.trials if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs) == 3


def test_baselines_are_the_cheapest_single_the_dearest_single_and_the_whole_pool(tmp_path: Path) -> None:
    pool = ["fake/a", "fake/b", "fake/c", "fake/d"]
    prices = {"fake/a": 3.0, "fake/b": 1.0, "fake/c": 9.0, "fake/d": 5.0}
    exp = _experiment(tmp_path, pool=pool, trials=3, proposers=[1, 4])
    study = asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=lambda r: "yes"), prices)))
    first = [[a["model"] for a in t.user_attrs["spec"]["layers"][0]["proposers"]] for t in study.trials[:3]]
    assert first == [["fake/b"], ["fake/c"], pool]


def test_the_front_is_exactly_the_non_dominated_trials_of_the_chosen_objectives(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, pool=POOL[:5], trials=12, proposers=[1, 5])
    assert search_config(exp).objectives == ("quality", "usd")
    right = {"m0": 0.9, "m1": 0.2, "m2": 0.6, "m3": 0.5, "m4": 0.3}

    def answer(r):  # type: ignore[no-untyped-def]
        draw = hashlib.sha256(f"{r.model}|{r.messages[-1].content}".encode()).digest()[0] / 256
        return "yes" if draw < right[r.model] else "no"

    prices = {m: float(i + 1) for i, m in enumerate(POOL[:5])}
    study = asyncio.run(run_study(exp, _models(exp, ScriptedClient(responder=answer), prices)))
    assert len(study.directions) == 2
    complete = {r.number for r in evaluated(study)}
    trials = [t for t in study.trials if t.number in complete]
    front = {r.number for r in pareto(study)}

    def dominates(a, b) -> bool:  # type: ignore[no-untyped-def]
        qa, ca = a.user_attrs["quality"], a.user_attrs["cost_per_query_usd"]
        qb, cb = b.user_attrs["quality"], b.user_attrs["cost_per_query_usd"]
        return qa >= qb and ca <= cb and (qa > qb or ca < cb)

    for t in trials:
        beaten = any(dominates(o, t) for o in trials)
        assert (t.number in front) == (not beaten)


def test_latency_is_refused_as_an_objective_on_replayed_models(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, pool=["replay/a"], trials=1, proposers=[1, 1], objectives=["quality", "usd", "latency"])
    body = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    body["endpoints"] = {"replay": {"kind": "replay", "paths": []}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match="latency"):
        search_config(Experiment.load(tmp_path / "exp.yaml"))
    assert search_config(exp).objectives == ("quality", "usd", "latency")  # a scripted endpoint is not a replay


def test_trials_over_the_cost_constraint_are_kept_off_the_front(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, pool=["fake/a", "fake/b"], trials=3, proposers=[1, 2], max_cost_per_query=1e-4)
    client = ScriptedClient(responder=lambda r: "yes" if r.model == "b" else "no")
    study = asyncio.run(run_study(exp, _models(exp, client, {"fake/a": 1.0, "fake/b": 100.0})))
    costs = {t.number: t.user_attrs["cost_per_query_usd"] for t in study.trials if "cost_per_query_usd" in t.user_attrs}
    front = pareto(study)
    assert front and all(costs[r.number] <= 1e-4 for r in front)
    assert any(cost > 1e-4 for cost in costs.values())  # b alone is better but dearer than allowed
