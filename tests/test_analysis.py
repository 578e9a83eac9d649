"""The paper's analyses over RunLogs made by real runs of the scripted client: every layer scored,
layer by layer, aggregator vs ranker, vote curves, the cost front, similarity, roles and length."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from moa_lab import analysis
from moa_lab.analysis._proposers import Pool, vote_quality
from moa_lab.benchmarks import builtin_task
from moa_lab.core import Answer, Proposal, Request, Sample
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.testing import HashEmbedder, ScriptedClient
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter, read_runlog

TASK = builtin_task("opposites", items=8)
GOLD = {s.input: s.target for s in TASK.items}
FIRST_SET = " ".join(TASK.example_sets[0][0])


def answer(request: Request) -> str:
    """Layer 1: only the proposer with the first example set is right; a later layer (it sees
    `Proposed answers:`) is right; the ranker picks the first proposal; the final synthesizer errs."""
    prompt = request.prompt or ""
    query = next((line for line in reversed(prompt.splitlines()) if line.startswith("Q: ")), prompt.splitlines()[-1])
    if "position" in prompt:
        return "1"
    if "Proposed answers:" in prompt.splitlines()[-2]:
        return GOLD.get(query[3:], "?") if "rotated" not in prompt else "?"
    return GOLD.get(query, "?") if prompt.splitlines()[0] == FIRST_SET else "wrong"


def _run(tmp_path: Path, topologies: dict) -> list:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "output": str(tmp_path / "out"), "tracking": {"mlflow": False},
                                    "benchmark": {"kind": "builtin", "tasks": ["opposites"], "items": 8}, "topologies": topologies}))
    exp = Experiment.load(path)
    models = exp.model_set(use_cache=False)
    models.add_client("fake", ScriptedClient(responder=answer))
    done = asyncio.run(run_experiment(exp, models))
    return [read_runlog(s.runlog) for s in done.summaries]


def test_every_layer_is_scored_and_read_layer_by_layer(tmp_path: Path) -> None:
    [run] = _run(tmp_path, {"deep": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "layers": 3, "aggregator": "vote"}})
    for r in run.records:
        assert r.layer_scores is not None and len(r.layer_scores) == 3
        assert r.proposal_scores == r.layer_scores[0] == [1.0, 0.0, 0.0, 0.0, 0.0]
        assert r.layer_scores[1] == r.layer_scores[2] == [1.0] * 5
    result = analysis.layers([run])
    by_stage = {row["stage"]: row["quality"] for row in result.rows}
    assert by_stage == {"layer 1": 0.2, "layer 2": 1.0, "layer 3": 1.0, "answer": 1.0}
    oracle = {row["stage"]: row["oracle"] for row in result.rows}
    assert oracle["layer 1"] == 1.0


def test_ranker_against_synthesize_on_the_same_proposals(tmp_path: Path) -> None:
    runs = _run(tmp_path, {
        "synth": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "synthesize"},
        "rank": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "rank"},
        "vote": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "vote"},
    })
    result = analysis.ranker(runs)
    rows = {r["aggregator"]: r for r in result.rows}
    assert rows["rank"]["quality"] == 1.0  # picks proposal 1, the right one
    assert rows["synthesize"]["quality"] == 1.0  # the few-shot aggregator prompt sees the answers
    assert rows["vote"]["quality"] == 0.0  # four wrong votes
    assert rows["vote"]["difference"] == -1.0 and rows["vote"]["same_proposals"] == 1.0
    assert all(r["layer1_mean"] == 0.2 for r in result.rows)


def test_vote_curve_ends_at_the_vote_run_and_starts_at_the_mean_proposer(tmp_path: Path) -> None:
    runs = _run(tmp_path, {"vote": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "vote"},
                           "self": {"preset": "self-moa", "model": "fake/m", "k": 3, "aggregator": "vote", "temperature": 0.0}})
    from moa_lab.registry import build

    result = analysis.proposers(runs, build("extractor", "normalized"))
    curve = {(r["pool"], r["n"]): r for r in result.rows}
    assert curve[("vote__opposites", 1)]["quality"] == 0.2 and curve[("vote__opposites", 5)]["quality"] == 0.0
    assert curve[("vote__opposites", 1)]["kind"] == "multi-proposer" and curve[("self__opposites", 1)]["kind"] == "single-proposer"
    assert curve[("vote__opposites", 5)]["oracle"] == 1.0 and curve[("vote__opposites", 1)]["subsets"] == 5
    assert curve[("vote__opposites", 2)]["ci_low"] <= curve[("vote__opposites", 2)]["quality"] <= curve[("vote__opposites", 2)]["ci_high"]


def test_one_model_runs_are_pooled_per_task_and_only_on_shared_samples(tmp_path: Path) -> None:
    # the quickstart evaluation: one single-model topology per task, each task its own samples
    for task, ids in (("add", ["a1", "a2"]), ("legs", ["l1", "l2", "l3"])):
        _single_runlog(tmp_path, f"greedy__{task}", {i: "1" for i in ids}, 1.0, task)
    _single_runlog(tmp_path, "other__legs", {i: "2" for i in ("l1", "l2", "l3")}, 0.0, "legs")
    from moa_lab.registry import build

    result = analysis.proposers(analysis.runlogs([tmp_path]), build("extractor", "normalized"))
    pools = {r["pool"] for r in result.rows}
    assert pools == {"one-model runs (legs)"}
    curve = {r["n"]: r for r in result.rows}
    assert curve[1]["quality"] == 0.5 and curve[2]["oracle"] == 1.0


def test_vote_ties_go_to_the_first_candidate_and_unanswered_never_win() -> None:
    keys = np.array([[0, 1, 1], [0, 1, 2], [-1, -1, 3]])
    scores = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    pool = Pool("p", "multi-proposer", ["a", "b", "c"], keys, scores)
    assert vote_quality(pool, [0, 1, 2]).tolist() == [1.0, 1.0, 1.0]
    assert vote_quality(pool, [0, 1]).tolist() == [0.0, 1.0, 0.0]


def test_front_and_the_area_it_dominates() -> None:
    points = [(1.0, 0.5), (2.0, 0.7), (4.0, 0.6), (8.0, 0.9)]
    assert analysis.front(points) == [0, 1, 3]
    assert analysis.front_area(points, log_x=False) == pytest.approx((8 - 2) * 0.2)
    assert analysis.front_area(points) == pytest.approx((math.log10(8) - math.log10(2)) * 0.2)


def _single_runlog(folder: Path, label: str, answers: dict[str, str], score: float | None, task: str | None = None) -> Path:
    header = RunHeader(label=label, topology={"name": "single", "layers": [{"proposers": [{"agent": "plain", "model": f"replay/{label}"}]}]},
                       scorer=None if score is None else "exact", samples=len(answers), task=task)
    path = folder / f"{label}.jsonl"
    with RunLogWriter(path, header) as w:
        for i, text in answers.items():
            w.write(QueryRecord(sample=Sample(f"q{i}", id=i), answer=Answer(text, "a"), layers=[[Proposal("a", text)]], score=score))
    return path


def test_similarity_follows_the_better_proposal_and_cost_takes_external_quality(tmp_path: Path) -> None:
    ids = [str(i) for i in range(6)]
    text = {i: f"the capital of country {i} is city number {i} on the river" for i in ids}
    _single_runlog(tmp_path, "good", text, None)
    _single_runlog(tmp_path, "bad", {i: f"bananas {i} grow in warm places" for i in ids}, None)
    _single_runlog(tmp_path, "moa", {i: text[i] + " indeed" for i in ids}, None)
    csv = tmp_path / "board.csv"
    csv.write_text("name,lc\nGood,40\nBad,10\nMoA,60\n")
    runs = analysis.runlogs([tmp_path])
    external = analysis.external_quality(csv, "lc", runs)
    assert {k: v[1] for k, v in external.items()} == {"good": 40.0, "bad": 10.0, "moa": 60.0}
    result = analysis.similarity(runs, HashEmbedder(), aggregates=["moa"], external=external)
    rows = {r["proposer"]: r for r in result.rows}
    assert rows["good"]["bleu"] > 0.8 > 0.1 > rows["bad"]["bleu"]
    assert rows["good"]["cosine"] > rows["bad"]["cosine"]
    assert rows["good"]["spearman_bleu"] == 1.0 and rows["good"]["spearman_samples"] == 6
    cost = analysis.cost(runs, external=external)
    assert {r["run"]: r["quality"] for r in cost.rows} == {"bad": 10.0, "good": 40.0, "moa": 60.0}
    lengths = {r["run"]: r["median_chars"] for r in analysis.length(runs).rows}
    assert lengths["moa"] == lengths["good"] + len(" indeed")


def test_roles_reads_proposers_and_aggregators(tmp_path: Path) -> None:
    runs = _run(tmp_path, {"synth": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "synthesize"}})
    rows = {r["role"]: r for r in analysis.roles(runs).rows}
    assert rows["proposer"]["quality"] == 0.2 and rows["aggregator"]["quality"] == 1.0
    assert rows["aggregator"]["gain_over_proposals"] == pytest.approx(0.8)


def test_report_embeds_every_figure(tmp_path: Path) -> None:
    runs = _run(tmp_path, {"synth": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "synthesize"},
                           "rank": {"preset": "prompt-ensemble", "model": "fake/m", "k": 5, "aggregator": "rank"}})
    report = analysis.runs_report([runs[0].path.parent])
    files = analysis.write_report(report, tmp_path / "report")
    page = files[0].read_text()
    names = {a.name for a in report.analyses}
    assert {"proposers", "layers", "ranker", "cost", "roles", "length"} <= names
    assert page.count("data:image/png;base64,") == len(report.analyses)
    assert all((tmp_path / "report" / f"{n}.png").stat().st_size > 1000 for n in names)
    assert "synth__opposites" in page and "latency_p95_s" in page
