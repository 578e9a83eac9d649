"""experiments/paper/: the MoA paper's three systems load, validate and match the paper's settings
(checked offline: nothing is called)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa_lab.benchmarks import DataMissing
from moa_lab.evaluation import Experiment, groups
from moa_lab.topology import PAPER_PROPOSERS, build_topology

PAPER = sorted((Path(__file__).resolve().parents[1] / "experiments" / "paper").glob("*.yaml"))
AGGREGATORS = {"moa": "together/Qwen/Qwen1.5-110B-Chat", "moa-lite": "together/Qwen/Qwen1.5-72B-Chat",
               "moa-gpt-4o": "openai/gpt-4o-2024-05-13"}
PROPOSER_LAYERS = {"moa": 2, "moa-lite": 1, "moa-gpt-4o": 2}


def test_both_benchmarks_are_shipped() -> None:
    assert [p.stem for p in PAPER] == ["alpaca_eval", "mt_bench"]


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_systems_as_the_paper_ran_them(path: Path) -> None:
    exp = Experiment.load(path)
    specs = exp.topologies()
    assert set(specs) == set(AGGREGATORS)
    for label, spec in specs.items():
        build_topology(spec)
        assert len(spec.layers) == PROPOSER_LAYERS[label]
        for layer in spec.layers:
            assert sorted(a.args["model"] for a in layer.proposers) == sorted(PAPER_PROPOSERS)
        agents = [a for layer in spec.layers for a in layer.proposers] + [spec.aggregator]
        assert {(a.args["temperature"], a.args["max_tokens"]) for a in agents} == {(0.7, 2048)}
        assert spec.aggregator.agent == "synthesize" and spec.aggregator.args["model"] == AGGREGATORS[label]
    models = exp.model_set(use_cache=False)
    every = {a.args["model"] for s in specs.values() for layer in s.layers for a in layer.proposers}
    every |= {s.aggregator.args["model"] for s in specs.values()} | {str(exp.spec.scorer["model"])}
    assert all(models.prices.get(m).source for m in every)  # every call, the judge's included, is priced


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_judges_build_on_the_dataset(path: Path) -> None:
    exp = Experiment.load(path)
    try:
        sources = groups(exp)
    except DataMissing as exc:
        pytest.skip(str(exc))
    judge = {"alpaca_eval": "judge-pairwise(openai/gpt-4-1106-preview)", "mt_bench": "judge-single(openai/gpt-4)"}[path.stem]
    assert [g.scorer.name for g in sources if g.scorer] == [judge]
    assert len(sources[0].samples) == {"alpaca_eval": 805, "mt_bench": 80}[path.stem]
