"""Never below static, cascades that read answers, and sub-pools: on small synthetic pools whose
answer is known (fast), and on the shared GSM8K pool (slow)."""

from __future__ import annotations

import math
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.core import ConfigError
from moa_lab.routing import RoutingData, TrainConfig, evaluate_router, evaluate_subpools, train_router
from moa_lab.routing._cascade import candidates, front_plans, replay, replay_columns
from moa_lab.routing._evaluate import static_sweep
from moa_lab.routing._operating import static_out_of_fold
from moa_lab.routing._subsets import SubsetTable, all_subsets, vote_subsets
from moa_lab.routing._train import kfold
from moa_lab.routing._workflow import Embedded
from moa_lab.selection import CascadePlan, Router, vote_margin, vote_static
from moa_lab.testing import HashEmbedder

HASH = {"kind": "hash", "dim": 64}
LAMBDAS = (0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def _pool(n: int, rates: list[float], prices: list[float], seed: int, signal: bool = False) -> RoutingData:
    """n queries, one proposer per rate; each proposer is right independently with its rate, and wrong
    answers differ (its own id). With `signal`, the first two proposers are each right on one half
    of the queries only (the half a query's words tell)."""
    rng = np.random.default_rng(seed)
    m = len(rates)
    kinds = rng.integers(0, 2, n)
    queries = [f"{'apples pears' if k else 'trains ships'} question {i} {rng.integers(1000)}" for i, k in enumerate(kinds)]
    right = rng.random((n, m)) < np.array(rates)
    if signal:
        right[:, 0], right[:, 1] = kinds == 1, kinds == 0
    answers = np.where(right, 0, np.arange(1, m + 1)).astype(np.int32)
    return RoutingData([f"q{i}" for i in range(n)], queries, [{"agent": "plain", "model": f"fake/m{j}"} for j in range(m)],
                       [f"m{j}" for j in range(m)], right.astype(float), answers, np.tile(np.array(prices), (n, 1)),
                       np.full((n, m), 100.0), "synthetic")


def _embed(data: RoutingData) -> tuple[np.ndarray, HashEmbedder]:
    embedder = HashEmbedder(64)
    return embedder.encode(data.queries), embedder


@pytest.mark.parametrize("trial", range(30))
def test_subset_votes_and_margins_replay_vote_static_and_vote_margin(trial: int) -> None:
    rng = np.random.default_rng(trial)
    n, m = 40, int(rng.integers(2, 7))
    answers = rng.integers(-1, 3, (n, m)).astype(np.int32)
    success = (answers == 0).astype(float)
    members = [list(rng.permutation(m)[: int(rng.integers(1, m + 1))]) for _ in range(12)]
    outcome, margin = vote_subsets(answers, success, members)
    for s, subset in enumerate(members):
        assert (outcome[:, s] == vote_static(answers, success, subset)).all()
        assert np.allclose(margin[:, s], [vote_margin(list(answers[i, subset])) for i in range(n)])


def test_vote_margin_reads_agreement() -> None:
    assert vote_margin(["7", "7"]) == 1.0 and vote_margin(["7", "8"]) == 0.0
    assert vote_margin(["7", "7", "7", "8"]) == 0.5 and vote_margin(["7", None, "7"]) == pytest.approx(2 / 3)
    assert vote_margin([None, ""]) == 0.0 and vote_margin(["7"]) == 1.0


def test_cascade_learns_to_stop_when_cheap_proposers_agree() -> None:
    """Two cheap proposers right 85% of the time whose wrong answers differ, one dear one right 93%:
    when the cheap two agree they are right, so "call both, stop if they agree, else call the dear
    one" beats the dear one alone at a third of its $, and training finds it."""
    data = _pool(600, [0.85, 0.85, 0.93, 0.7], [1e-5, 1e-5, 1e-3, 2e-5], seed=1)
    train_rows, test_rows = data.split(0.3, 0)
    train, test = data.rows(train_rows), data.rows(test_rows)
    table = SubsetTable.measure(train)
    found = candidates(train, table)
    plans = front_plans(found, table)
    assert all(a.usd <= b.usd and a.accuracy < b.accuracy for a, b in zip(plans, plans[1:]))  # a front, cheapest first
    dear_alone = float(vote_static(test.answers, test.success, [2]).mean())
    good = [p for p in plans if set(p.stages[0]) == {0, 1} and 2 in p.stages[-1] and p.min_agreement[0] > 0]
    assert good, [p.label() for p in plans]
    right, spend, calls = replay(good[0], test)
    assert right.mean() >= dear_alone and spend.mean() < 0.4 * 1e-3
    agree = test.answers[:, 0] == test.answers[:, 1]
    assert (calls[agree] == 2).all() and (calls[~agree] >= 3).all()  # only proposers actually called are paid for
    assert np.allclose(spend, np.where(agree, 2e-5, spend))


def test_candidate_replay_matches_the_plan_replay() -> None:
    data = _pool(200, [0.6, 0.7, 0.8, 0.9, 0.5], [1e-5, 2e-5, 5e-5, 1e-4, 1e-6], seed=2)
    table = SubsetTable.measure(data)
    found = candidates(data, table)
    picks = np.random.default_rng(0).choice(len(found.accuracy), 40, replace=False)
    right, spend = replay_columns(table, [found.columns[i] for i in picks], [found.thresholds[i] for i in picks])
    for col, i in enumerate(picks):
        r, s, _ = replay(found.plan(int(i), table), data)
        assert (r == right[:, col]).all() and np.allclose(s, spend[:, col])
        assert found.accuracy[i] == pytest.approx(r.mean()) and found.usd[i] == pytest.approx(s.mean())


def test_cascade_plan_is_a_typed_record_that_round_trips_and_refuses_bad_input() -> None:
    plan = CascadePlan(((3, 1), (0,)), (1.0,), (0, 3, 1), accuracy=0.9, usd=1e-4)
    assert CascadePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.called(0) == [3, 1] and plan.called(1) == [0, 3, 1]
    assert plan.stops(0, 1.0) and not plan.stops(0, 0.5) and plan.stops(1, 0.0)
    assert plan.remap([10, 11, 12, 13]).stages == ((13, 11), (10,))
    with pytest.raises(ConfigError, match="stop thresholds"):
        CascadePlan(((0,), (1,)), (), (0, 1))
    with pytest.raises(ConfigError, match="malformed cascade plan"):
        CascadePlan.from_dict({"stages": [[0]]})


def _hull_at(cost: np.ndarray, accuracy: np.ndarray, usd: float) -> float:
    """The upper concave hull of (cost, accuracy) points at `usd`: the best a mix of them reaches."""
    hull: list[tuple[float, float]] = []
    for c, a in sorted(zip(cost.tolist(), accuracy.tolist())):
        if hull and a <= hull[-1][1]:
            continue  # dearer and no better
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (c - hull[-2][0]) <= (a - hull[-2][1]) * (hull[-1][0] - hull[-2][0]):
            hull.pop()
        hull.append((c, a))
    return float(np.interp(usd, [c for c, _ in hull], [a for _, a in hull]))


def test_without_signal_the_router_keeps_to_static_subsets() -> None:
    """Outcomes independent of the query: the embedding tells nothing, so where cross-validation keeps
    routing its only gain is mixing static subsets across queries (a $ between two of them, more
    accurate than the one subset at that $), never above what such mixes reach; and on held-out
    queries the router is no worse than the static subsets."""
    data = _pool(500, [0.6, 0.75, 0.85, 0.9], [1e-5, 3e-5, 2e-4, 1e-3], seed=3)
    x, embedder = _embed(data)
    train_rows, test_rows = data.split(0.3, 0)
    config = TrainConfig(kinds=("logistic",), cascade_stages=0, lambdas=LAMBDAS)
    router = train_router(data.rows(train_rows), x[train_rows], embedder, HASH, config)
    points = router.operating
    assert len(points) == len(LAMBDAS)
    table = SubsetTable.measure(data.rows(train_rows))
    assert list(points[0].subset) == table.members[table.front()[-1]]  # λ = 0: against the most accurate subset
    for p in points:
        if p.routes:
            mixed = _hull_at(table.cost(), table.accuracy(), p.routed_usd)
            assert p.routed_accuracy <= mixed + 2 * p.stderr, (p.lam, p.routed_accuracy, mixed, p.stderr)
    static = [p for p in points if not p.routes]
    p0 = static[-1]  # the dearest λ: the cheapest subset, called for every query with no embedding
    assert router.choose(np.full(4, 0.5), np.full(4, 1e-4), lam=p0.lam, x=x[0]) == list(p0.subset)
    result = evaluate_router(router, data, x, train_rows, test_rows)  # the full λ sweep: static where trained so
    assert result.area["router"] >= result.area["static-best"] - 0.01
    assert result.summary["choices"][0]["lam"] == 0.0


def test_the_static_sweep_finds_every_front_subset_the_router_calls_between_coarse_lambdas() -> None:
    """Static at λ 1 and 100 (routing would spend $1 and $0.01 there), so the router calls the
    front's best subset at every price in between: a coarse λ grid offers 2 of the 6 front subsets,
    the sweep all 6; a router that routes everywhere offers none."""
    front = [{"subset": [j], "usd": usd, "accuracy": acc}
             for j, (usd, acc) in enumerate([(0.01, 0.5), (0.02, 0.6), (0.05, 0.7), (0.1, 0.75), (0.3, 0.8), (1.0, 0.85)])]
    point = {"routes": False, "routed_accuracy": 0.0, "static_accuracy": 0.0, "static_usd": 0.0, "gain": 0.0, "stderr": 0.0}
    meta = {"aggregator": "vote", "operating": {"same_price": 1.0, "front": front, "points": [
        {**point, "lam": 1.0, "subset": [5], "routed_usd": 1.0}, {**point, "lam": 100.0, "subset": [0], "routed_usd": 0.01}]}}
    router = Router(meta, {})
    coarse = {tuple(router.static_subset(lam) or ()) for lam in (1.0, 100.0)}
    assert coarse == {(5,), (0,)}
    swept = static_sweep(router, (1.0, 100.0))
    assert sorted(swept.values()) == [(j,) for j in range(6)]
    assert list(swept) == sorted(swept) and min(swept) == 0.0  # each at the first λ that calls it, dearest first
    assert static_sweep(router, (1.0, 100.0), k=0) == {}  # no subset fits k=0: the router would route


def test_the_static_fallback_reaches_both_ends_of_the_front() -> None:
    """Routing would spend between $0.05 and $0.3 at the trained λ, yet where the router keeps to
    static subsets it still offers the whole front: at λ = 0 the most accurate subset (price is no
    object), between 0 and the first trained λ every subset up to it, and beyond the largest trained λ
    every cheaper one, down to the cheapest at λ = inf."""
    front = [{"subset": [j], "usd": usd, "accuracy": acc}
             for j, (usd, acc) in enumerate([(0.01, 0.5), (0.02, 0.6), (0.05, 0.7), (0.1, 0.75), (0.3, 0.8), (1.0, 0.85)])]
    point = {"routes": False, "routed_accuracy": 0.0, "static_accuracy": 0.0, "static_usd": 0.0, "gain": 0.0, "stderr": 0.0}
    meta = {"aggregator": "vote", "operating": {"same_price": 1.05, "front": front, "points": [
        {**point, "lam": 0.0, "subset": [5], "routed_usd": 0.3}, {**point, "lam": 1.0, "subset": [4], "routed_usd": 0.3},
        {**point, "lam": 100.0, "subset": [2], "routed_usd": 0.05}]}}
    router = Router(meta, {})
    assert [router.static_subset(lam) for lam in (0.0, 1.0, 100.0, math.inf)] == [[5], [4], [2], [0]]
    assert router.static_subset(200.0) == [1]  # beyond λ = 100 the budget falls as 1/λ: $0.025 at 200
    assert sorted(static_sweep(router, (0.0, 1.0, 100.0)).values()) == [(j,) for j in range(6)]


def test_with_signal_routing_is_kept_where_it_wins() -> None:
    """Two cheap experts, each right on one kind of question, and a dear all-rounder: routing each
    query to its expert wins by far at its price, and cross-validation keeps it (at λ = 0 routing is
    measured against the most accurate subset at any price, so there it only has to win)."""
    data = _pool(400, [0.5, 0.5, 0.97, 0.3], [1e-5, 1e-5, 1e-3, 5e-6], seed=4, signal=True)
    x, embedder = _embed(data)
    train_rows, test_rows = data.split(0.3, 0)
    router = train_router(data.rows(train_rows), x[train_rows], embedder, HASH,
                          TrainConfig(kinds=("knn", "logistic"), lambdas=LAMBDAS))
    routed = [p for p in router.operating if p.routes]
    assert routed and all(p.gain > 0.1 for p in routed if p.lam > 0)
    assert all(p.gain > p.stderr for p in routed)
    result = evaluate_router(router, data, x, train_rows, test_rows, lambdas=LAMBDAS)
    assert result.area["router"] > result.area["static-best"] + 0.02


def test_static_policy_is_measured_out_of_fold() -> None:
    data = _pool(300, [0.6, 0.9], [1e-5, 1e-3], seed=5)
    table = SubsetTable.measure(data, all_subsets(2, [1, 0]))
    folds = kfold(300, 5, 0)
    right, spend = static_out_of_fold(table, folds, budget=2e-5)  # only the cheap one fits
    assert (right == (data.answers[:, 0] == 0)).all() and np.allclose(spend, 1e-5)
    right, spend = static_out_of_fold(table, folds, budget=1.0)
    assert np.allclose(spend, 1e-3) or np.allclose(spend, 1e-3 + 1e-5)


def test_subpools_train_and_evaluate_each_draw(tmp_path: Path) -> None:
    data = _pool(300, [0.85, 0.85, 0.93, 0.7, 0.6, 0.8], [1e-5, 1e-5, 1e-3, 2e-5, 1e-6, 3e-4], seed=6)
    x, embedder = _embed(data)
    config = TrainConfig(kinds=("logistic",), folds=3, lambdas=(0.0, 10.0, 1000.0, 1e5))
    report = evaluate_subpools(Embedded(data, x, embedder, 0.0), HASH, pools=3, size=4, seed=2, config=config, out=tmp_path)
    assert len(report.pools) == 3 and all(len(p.names) == 4 for p in report.pools)
    assert len({tuple(p.names) for p in report.pools}) > 1  # different draws
    stored = json.loads((tmp_path / "subpools.json").read_text())
    assert stored["router_wins"] == report.router_wins == sum(p.area_router >= p.area_static - 1e-12 for p in report.pools)
    for p in report.pools:  # every number printed is read back from the sub-pool's stored evaluation
        ev = json.loads((tmp_path / f"pool{p.index:02d}" / "eval.json").read_text())
        assert ev["summary"]["area_cascade"] == p.area_cascade and ev["area"]["router"] == p.area_router
        assert Router.load(tmp_path / f"pool{p.index:02d}").meta["names"] == sorted(p.names, key=data.names.index)
    with pytest.raises(ConfigError, match="between 2 and 6"):
        evaluate_subpools(Embedded(data, x, embedder, 0.0), HASH, pools=1, size=9)


def test_cli_eval_prints_the_choices_and_runs_subpools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    monkeypatch.chdir(tmp_path)
    data = _pool(160, [0.85, 0.85, 0.93, 0.7], [1e-5, 1e-5, 1e-3, 2e-5], seed=7)
    folder = tmp_path / "recorded"
    (folder / "responses").mkdir(parents=True)
    with gzip.open(folder / "questions.jsonl.gz", "wt") as fh:
        for qid, q in zip(data.ids, data.queries):
            fh.write(json.dumps({"id": qid, "question": q, "answer": "0"}) + "\n")
    rng = random.Random(0)
    for j in range(4):
        with gzip.open(folder / "responses" / f"m{j}.jsonl.gz", "wt") as fh:
            for i, qid in enumerate(data.ids):
                out = "0" if data.answers[i, j] == 0 else str(rng.randint(1, 9) * 10 + j)
                fh.write(json.dumps({"id": qid, "output": f"The answer is {out}."}) + "\n")
    (folder / "prices.yaml").write_text("models:\n" + "".join(f"  m{j}: {{input: {p}, output: {p}}}\n" for j, p in enumerate((0.1, 0.1, 10.0, 0.2))))
    runner = CliRunner()
    res = runner.invoke(app, ["router", "train", str(folder), "--out", "r", "--embedder", "hash", "--kinds", "logistic",
                              "--prices", str(folder / "prices.yaml"), "--endpoint", "fake"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["router", "eval", "r", str(folder), "--no-mlflow"])
    assert res.exit_code == 0, res.output
    assert "per λ: routing or the best static subset" in res.output and "cascade reaches it at" in res.output
    res = runner.invoke(app, ["router", "eval", "subs", str(folder), "--subpools", "2", "--size", "3", "--embedder", "hash",
                              "--prices", str(folder / "prices.yaml"), "--endpoint", "fake"])
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "subs" / "subpools.json").read_text())
    assert f"router area ≥ static in {stored['router_wins']} of 2" in res.output
    res = runner.invoke(app, ["router", "eval", "subs", str(folder), "--subpools", "2"])
    assert res.exit_code != 0 and "--subpools and --size go together" in res.output


@pytest.mark.slow
def test_on_the_shared_gsm8k_pool_the_cascade_beats_static_and_the_router_never_falls_below(data_dir: Path, tmp_path: Path) -> None:
    from moa_lab.routing import evaluate, train

    folder = data_dir / "gsm8k"
    router = train(folder, tmp_path / "r", seed=0)
    assert router.cascades and router.operating
    result, _ = evaluate(tmp_path / "r", folder, mlflow=False)
    s = result.summary
    assert s["area_cascade"] > s["area_static_best"]
    assert s["area_router"] >= s["area_static_best"] - 0.002  # the static subsets wherever routing is not proven better
    assert s["cascade_cost_ratio_at_best_single_accuracy"] is not None and s["cascade_cost_ratio_at_best_single_accuracy"] < 0.25


def test_subpools_read_back_what_they_stored(tmp_path: Path) -> None:
    data = _pool(240, [0.85, 0.85, 0.93, 0.7, 0.6], [1e-5, 1e-5, 1e-3, 2e-5, 1e-6], seed=8)
    x, embedder = _embed(data)
    loaded = Embedded(data, x, embedder, 0.0)
    config = TrainConfig(kinds=("logistic",), folds=3, lambdas=(0.0, 1000.0))
    first = evaluate_subpools(loaded, HASH, pools=3, size=3, seed=1, config=config, out=tmp_path, only=[1])
    assert [p.index for p in first.pools] == [1] and not (tmp_path / "pool00").exists()
    (tmp_path / "pool01" / "eval.json").unlink()  # the artifact is reused, the evaluation redone
    again = evaluate_subpools(loaded, HASH, pools=3, size=3, seed=1, config=config, out=tmp_path, reuse=True)
    assert [p.index for p in again.pools] == [0, 1, 2] and again.pools[1] == first.pools[0]
    read = evaluate_subpools(loaded, HASH, pools=3, size=3, seed=1, config=config, out=tmp_path, reuse=True)
    assert read == again
