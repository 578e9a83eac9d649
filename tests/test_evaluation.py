"""Evaluation runs over the scripted client: scores, oracle, statistics, MT-Bench's two turns."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import yaml

from moa_lab.benchmarks import builtin_task
from moa_lab.core import Request
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import read_runlog


def _experiment(tmp_path: Path, body: dict) -> Experiment:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "output": str(tmp_path / "out"), "tracking": {"mlflow": False}, **body}))
    return Experiment.load(path)


def test_builtin_tasks_scores_oracle_and_intervals(tmp_path: Path) -> None:
    gold = {s.input: s.target for s in builtin_task("opposites").items}

    def answer(request: Request) -> str:  # proposer 1 always right, the others always wrong
        query = (request.prompt or "").splitlines()[-1]
        first_example = (request.prompt or "").splitlines()[0]
        right = first_example == " ".join(builtin_task("opposites").example_sets[0][0])
        return gold.get(query, "?") if right else "wrong"

    exp = _experiment(tmp_path, {
        "benchmark": {"kind": "builtin", "tasks": ["opposites"], "items": 20},
        "topologies": {"vote": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "vote"}},
    })
    models = exp.model_set(use_cache=False)
    models.add_client("fake", ScriptedClient(responder=answer))
    [summary] = asyncio.run(run_experiment(exp, models)).summaries
    assert summary.samples == 20
    assert summary.quality.mean == 0.0  # four wrong votes beat the one right proposer
    assert summary.oracle is not None and summary.oracle.mean == 1.0
    records = read_runlog(summary.runlog).records
    assert all(r.proposal_scores[0] == 1.0 and r.proposal_scores[1:] == [0.0] * 4 for r in records)
    assert summary.quality.low <= summary.quality.mean <= summary.quality.high


def test_mt_bench_second_turn_is_asked_in_the_same_conversation(data_dir: Path, tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: f"reply to: {r.messages[-1].content[:20]}")
    exp = _experiment(tmp_path, {
        "benchmark": {"kind": "mt_bench", "path": str(data_dir / "mt_bench"), "limit": 3},
        "topologies": {"one": {"preset": "single", "model": "fake/m"}},
    })
    models = exp.model_set(use_cache=False)
    models.add_client("fake", client)
    turn1, turn2 = asyncio.run(run_experiment(exp, models)).summaries
    assert turn1.samples == 3 and turn2.samples == 3 and turn1.quality is None
    second = [r for r in client.requests if len(r.messages) == 3]
    assert len(second) == 3
    first_q = second[0].messages[0].content
    assert second[0].messages[1].content == f"reply to: {first_q[:20]}".strip()
    assert [m.role for m in second[0].messages] == ["user", "assistant", "user"]
