"""Every shipped experiment file loads and builds (the data-backed ones need their dataset: pulled or in ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa_lab.benchmarks import DataMissing
from moa_lab.evaluation import Experiment, groups
from moa_lab.topology import build_topology

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_file_is_valid(path: Path) -> None:
    exp = Experiment.load(path)
    for spec in exp.topologies().values():
        build_topology(spec)
    try:
        sources = groups(exp)
    except DataMissing as exc:  # a recorded dataset neither pulled nor in ../shared/data
        pytest.skip(str(exc))
    assert all(g.samples for g in sources)


def test_there_are_experiments() -> None:
    assert {"quickstart", "quickstart_eval", "gsm8k_replay", "alpaca_eval_replay", "moa_lite_replay"} <= {p.stem for p in EXPERIMENTS}
