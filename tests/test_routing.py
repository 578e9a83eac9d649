"""Routers: training data, training, the artifact and its checks, the learned selector in a live
pipeline, held-out evaluation, the CLI and the MLflow run. The synthetic pool has two cheap experts
that are each right on one kind of question only and one dear model right on both: a router that
learns anything calls the right expert, and no static subset can match it."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moa_lab.agents import AgentContext
from moa_lab.cli import app
from moa_lab.core import ConfigError, Message, Proposal, Sample, Usage
from moa_lab.embedding import EmbeddingCache, embed
from moa_lab.evaluation import evaluate as evaluate_topology
from moa_lab.models import MemoryCache, ModelSet, PriceTable, estimate_prompt_tokens, estimate_tokens
from moa_lab.pipeline import Pipeline
from moa_lab.registry import build
from moa_lab.routing import TrainConfig, evaluate, from_recorded, from_runlogs, train
from moa_lab.routing._data import _answer_ids
from moa_lab.routing._train import kfold
from moa_lab.search._space import SearchSpace, suggest
from moa_lab.selection import LearnedSelector, Router, build_selector, vote_static
from moa_lab.selection._kernels import latent_vote_quality
from moa_lab.testing import HashEmbedder, ScriptedClient
from moa_lab.tracking import read_runlog
from moa_lab.topology import AgentSpec, LayerSpec, SelectorSpec, TopologySpec

HASH = {"kind": "hash", "dim": 128}
PRICES = """models:
  fruit-expert: {input: 0.1, output: 0.1}
  train-expert: {input: 0.1, output: 0.1}
  all-rounder: {input: 10.0, output: 30.0}
  guesser: {input: 0.05, output: 0.05}
"""


def _questions(n: int = 160) -> list[tuple[str, str, int]]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 9)
        if i % 2:
            out.append((f"q{i}", f"Anna has {a} apples and buys {b} more apples at the market. How many apples has she?", a + b))
        else:
            out.append((f"q{i}", f"A train runs {a} km each hour for {b} hours. How many km does the train run?", a * b))
    return out


def _reply(model: str, question: str, gold: int, rng: random.Random) -> str:
    fruit = "apples" in question
    right = {"fruit-expert": fruit, "train-expert": not fruit, "all-rounder": True, "guesser": rng.random() < 0.5}[model]
    wrong = gold + {"fruit-expert": 1, "train-expert": 2, "all-rounder": 3, "guesser": 4}[model]
    return f"Let me think step by step. The answer is {gold if right else wrong}."


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset in the GSM8K layout with four models' recorded replies, and a price file."""
    folder = tmp_path_factory.mktemp("recorded")
    qs = _questions()
    with gzip.open(folder / "questions.jsonl.gz", "wt") as fh:
        for qid, text, gold in qs:
            fh.write(json.dumps({"id": qid, "question": text, "answer": str(gold)}) + "\n")
    (folder / "responses").mkdir()
    rng = random.Random(3)
    for model in ("fruit-expert", "train-expert", "all-rounder", "guesser"):
        with gzip.open(folder / "responses" / f"{model}.jsonl.gz", "wt") as fh:
            for qid, text, gold in qs:
                fh.write(json.dumps({"id": qid, "model": model, "output": _reply(model, text, gold, rng)}) + "\n")
    (folder / "prices.yaml").write_text(PRICES)
    return folder


@pytest.fixture(scope="module")
def artifact(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("router") / "router"
    train(recorded, out, embedder=HASH, prices=str(recorded / "prices.yaml"), endpoint="fake")
    return out


def test_recorded_layout_is_scored_and_priced_like_the_replay_endpoint(recorded: Path) -> None:
    prices = PriceTable.default().merged(PriceTable.from_mapping({"fruit-expert": {"input": 0.1, "output": 0.1}, "train-expert": 0}))
    data = from_recorded(recorded, prices=prices, models=["fruit-expert", "train-expert"])
    assert data.names == ["fruit-expert", "train-expert"]
    fruit = np.array(["apples" in q for q in data.queries])
    assert (data.scores[fruit, 0] == 1).all() and (data.scores[~fruit, 0] == 0).all()
    assert (data.scores[~fruit, 1] == 1).all()
    with gzip.open(recorded / "responses" / "fruit-expert.jsonl.gz", "rt") as fh:
        first = json.loads(fh.readline())["output"]
    usage = Usage(estimate_prompt_tokens((Message("user", data.queries[0]),)), estimate_tokens(first))
    assert data.cost[0, 0] == pytest.approx(prices.get("fruit-expert").cost(usage).list_usd)
    assert data.tokens[0, 0] == usage.input_tokens + usage.output_tokens
    assert data.proposers[0] == {"agent": "plain", "model": "replay/fruit-expert"}


def test_router_learns_which_expert_to_call_and_beats_every_static_subset(recorded: Path, artifact: Path) -> None:
    router = Router.load(artifact)
    assert [p["model"] for p in router.proposers] == ["fake/all-rounder", "fake/fruit-expert", "fake/guesser", "fake/train-expert"]
    result, folder = evaluate(artifact, recorded, mlflow=False)
    assert (folder / "curve.png").stat().st_size > 10_000 and (folder / "eval.json").is_file()
    dear = next(p for p in result.points if p.method == "best-single")
    assert dear.label == "all-rounder" and dear.accuracy == 1.0
    cheap_router = [p for p in result.curve("router") if p.usd < dear.usd / 5]
    assert max(p.accuracy for p in cheap_router) >= 0.95
    cheap_static = [p for p in result.curve("static-best") if p.usd < dear.usd / 5]
    assert max(p.accuracy for p in cheap_static) <= 0.8
    assert result.area["router"] > result.area["static-best"]
    assert result.summary["router_cost_ratio_at_best_single_accuracy"] < 0.2
    assert result.summary["gap_recovered"] is None  # the best single is already perfect: no gap to recover


def test_artifact_refuses_another_pool_another_embedder_and_another_version(artifact: Path) -> None:
    router = Router.load(artifact)
    pool = [AgentSpec(**p) for p in router.proposers]
    with pytest.raises(ConfigError, match="not in the router: .*fake/other"):
        router.align(pool[:3] + [AgentSpec(agent="plain", model="fake/other")])
    with pytest.raises(ConfigError, match="missing from the topology"):
        router.align(pool[:3])
    with pytest.raises(ConfigError, match="trained on embedder 'hash-128'"):
        build_selector(SelectorSpec(kind="learned", path=str(artifact), embedder={"kind": "hash", "dim": 64}))
    meta = json.loads((artifact / "router.json").read_text())
    broken = artifact.parent / "future"
    broken.mkdir()
    (broken / "router.json").write_text(json.dumps(meta | {"version": 99}))
    with pytest.raises(ConfigError, match="version 99"):
        Router.load(broken)
    with pytest.raises(ConfigError, match="not a router artifact"):
        Router.load(artifact.parent)
    arrays = dict(np.load(artifact / "arrays.npz"))
    incomplete = artifact.parent / "incomplete"
    Router(meta, {k: v for k, v in arrays.items() if k != "platt"}).save(incomplete)
    with pytest.raises(ConfigError, match="lacks arrays platt"):
        Router.load(incomplete)


def test_folds_are_a_seeded_shuffle_cut_in_k_and_cover_every_row_once() -> None:
    """Routers trained before scikit-learn made the folds were given these very folds: the same seed
    must keep giving the same router."""
    folds = kfold(23, 5, seed=4)
    order = np.random.default_rng(4).permutation(23)
    assert [list(val) for _, val in folds] == [sorted(f) for f in np.array_split(order, 5)]
    for train_rows, val in folds:
        assert list(train_rows) == sorted(set(range(23)) - set(val))
    assert sorted(np.concatenate([val for _, val in folds])) == list(range(23))


def test_the_curve_plot_leaves_matplotlib_global_state_alone(recorded: Path, artifact: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = f"""
import sys
import matplotlib
backend = dict.__getitem__(matplotlib.rcParams, "backend")  # the raw setting: get_backend() would resolve it
from moa_lab.routing import evaluate
evaluate({str(artifact)!r}, {str(recorded)!r}, out={str(tmp_path / "eval")!r}, mlflow=False)
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert dict.__getitem__(matplotlib.rcParams, "backend") == backend, "backend changed"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "eval" / "curve.png").stat().st_size > 10_000


def test_a_topology_with_the_wrong_pool_fails_before_any_call(artifact: Path) -> None:
    spec = TopologySpec(
        layers=(LayerSpec(proposers=(AgentSpec(agent="plain", model="fake/all-rounder"), AgentSpec(agent="plain", model="fake/x"))),),
        aggregator=AgentSpec(agent="vote"),
        selector=SelectorSpec(kind="learned", path=str(artifact)),
    )
    client = ScriptedClient()
    models = ModelSet(clients={"fake": client}, cache=MemoryCache())
    with pytest.raises(ConfigError, match="does not match the topology's layer 1"):
        Pipeline(spec, models)
    assert client.requests == []


def test_learned_selector_in_a_live_pipeline_calls_only_the_chosen_proposers(recorded: Path, artifact: Path) -> None:
    router = Router.load(artifact)
    qs = _questions(40)
    gold = {text: g for _, text, g in qs}
    rng = random.Random(0)

    def respond(request):  # type: ignore[no-untyped-def]
        return _reply(request.model, request.messages[-1].content, gold[request.messages[-1].content], rng)

    client = ScriptedClient(responder=respond)
    spec = TopologySpec(
        layers=(LayerSpec(proposers=tuple(AgentSpec(**p) for p in reversed(router.proposers))),),  # any order
        aggregator=AgentSpec(agent="vote", extractor="answer"),
        selector=SelectorSpec(kind="learned", path=str(artifact), lam=2000.0),
    )
    models = ModelSet(clients={"fake": client}, cache=MemoryCache())
    results = asyncio.run(Pipeline(spec, models).run([Sample(text, str(g), qid) for qid, text, g in qs]))
    experts = 0
    for result in results:
        called = [c.model for c in result.calls]
        assert called == [spec.layers[0].proposers[i].args["model"] for i in result.selected]
        expert = "fake/fruit-expert" if "apples" in result.sample.input else "fake/train-expert"
        experts += called == [expert]
    assert experts >= 36  # cheap and right for its question, almost always
    assert len(client.requests) == sum(len(r.selected) for r in results) < 2 * len(results)


def _scripted_runlog(path: Path, questions: int, seed: int, prices: dict[str, float]) -> Path:
    """An evaluation RunLog of a vote over the models in `prices` ($ per million tokens, in and
    out), answering scripted like the recorded dataset."""
    qs = _questions(questions)
    gold = {text: g for _, text, g in qs}
    rng = random.Random(seed)
    client = ScriptedClient(responder=lambda r: _reply(r.model, r.messages[-1].content, gold[r.messages[-1].content], rng))
    models = ModelSet(clients={"fake": client}, cache=MemoryCache(),
                      prices=PriceTable.from_mapping({m: {"input": usd, "output": usd} for m, usd in prices.items()}))
    pool = tuple(AgentSpec(agent="plain", model=f"fake/{m}") for m in prices)
    spec = TopologySpec(layers=(LayerSpec(proposers=pool),), aggregator=AgentSpec(agent="vote", extractor="answer"))
    asyncio.run(evaluate_topology(spec, [Sample(t, str(g), q) for q, t, g in qs], models, build("scorer", "numeric"), runlog=path))
    return path


def test_training_data_from_runlogs(tmp_path: Path) -> None:
    runlog = _scripted_runlog(tmp_path / "run.jsonl", 30, 1, {"fruit-expert": 1.0, "train-expert": 2.0})
    data = from_runlogs([runlog], extractor="answer")
    assert data.proposers == [{"agent": "plain", "model": "fake/fruit-expert"}, {"agent": "plain", "model": "fake/train-expert"}]
    fruit = np.array(["apples" in q for q in data.queries])
    assert (data.scores[fruit] == [1, 0]).all() and (data.scores[~fruit] == [0, 1]).all()
    assert (data.cost[:, 1] > data.cost[:, 0]).all()
    records = read_runlog(runlog).records
    assert data.tokens[0].sum() == sum(c.usage.total_tokens for c in records[0].calls)  # only layer-1 calls
    assert (data.answers[:, 0] != data.answers[:, 1]).all()  # they never agree: one of them is always wrong
    router = Router.load(train(runlog, tmp_path / "r", embedder=HASH, holdout=False, config=TrainConfig(folds=3), extractor="answer").save(tmp_path / "r"))
    assert router.meta["training"]["queries"] == 30


@pytest.mark.parametrize("trial", range(200))
def test_offline_vote_replays_the_vote_aggregator(trial: int) -> None:
    rng = random.Random(trial)
    texts = [rng.choice(["The answer is 3", "42", "answer: 7", "no idea", "7.0", "it is 3"]) for _ in range(rng.randint(1, 6))]
    right = [("7" in t) for t in texts]
    vote = build("aggregator", "vote", {"extractor": "answer"})
    proposals = [Proposal(f"p{i}", t) for i, t in enumerate(texts)]
    answer = asyncio.run(vote.aggregate("q", proposals, AgentContext(ModelSet(), [], "vote", 2, 0, (), ())))
    answers = _answer_ids([texts], build("extractor", "answer"))
    replayed = vote_static(answers, np.array([right], float), list(range(len(texts))))[0]
    assert replayed == right[answer.chosen]


@pytest.mark.parametrize("trial", range(40))
def test_predicted_vote_quality_is_the_exact_expectation_over_every_outcome(trial: int) -> None:
    """The kernels' closed forms against enumerating every right/wrong outcome of the members."""
    rng = np.random.default_rng(trial)
    members = rng.permutation(8)[: rng.integers(1, 6)]
    p, shift, weight, mix = rng.random(8), rng.normal(size=(3, 8)), rng.dirichlet(np.ones(3)), rng.random()

    def exact(q: np.ndarray) -> float:  # members sorted most likely first: ties go to the first
        q = np.sort(q)[::-1]
        total = 0.0
        for outcome in itertools.product([0, 1], repeat=len(q)):
            right = np.array(outcome)
            chance = float(np.prod(np.where(right == 1, q, 1 - q)))
            distinct = right[0] == 1 or right.sum() >= 2  # wrong answers all differ
            alike = 1.0 if 2 * right.sum() > len(q) else 0.5 if 2 * right.sum() == len(q) else 0.0
            total += chance * (mix * distinct + (1 - mix) * alike)
        return total

    slots = np.append(members, -1)[None, :]  # an unused slot, as the greedy search pads its rows
    probs = np.where(slots >= 0, p[np.where(slots >= 0, slots, 0)], 0.0)
    plain = latent_vote_quality(probs, slots >= 0, slots, mix)[0]
    latent = latent_vote_quality(probs, slots >= 0, slots, mix, weight, shift)[0]
    logit = np.log(p[members] / (1 - p[members]))
    assert plain == pytest.approx(exact(p[members]), abs=1e-12)
    assert latent == pytest.approx(sum(w * exact(1 / (1 + np.exp(-(logit + s[members])))) for w, s in zip(weight, shift)), abs=1e-9)


def test_embedding_cache_embeds_each_text_once(tmp_path: Path) -> None:
    class Counting(HashEmbedder):
        calls = 0

        def encode(self, texts):  # type: ignore[no-untyped-def]
            Counting.calls += len(texts)
            return super().encode(texts)

    cache = EmbeddingCache(tmp_path / "e.sqlite")
    first = embed(Counting(32), ["a b", "c d", "a b"], cache)
    second = embed(Counting(32), ["c d", "a b"], EmbeddingCache(tmp_path / "e.sqlite"))
    assert Counting.calls == 2
    assert np.allclose(second, first[[1, 0]]) and np.allclose(np.linalg.norm(first, axis=1), 1)


def test_a_router_study_never_scores_the_questions_the_router_was_trained_on(artifact: Path, recorded: Path, tmp_path: Path) -> None:
    import yaml

    from moa_lab.evaluation import Experiment, groups
    from moa_lab.search import search_config, search_split

    trained = set(Router.load(artifact).meta["training"]["query_ids"])
    body = {"name": "r", "benchmark": {"kind": "gsm8k", "path": str(recorded)}, "scorer": "numeric",
            "search": {"holdout": 0.3, "space": {"router": {"path": str(artifact)}}}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    exp = Experiment.load(tmp_path / "exp.yaml")
    everything = {s.id for s in groups(exp)[0].samples}
    sides = [{s.id for s in groups(search_split(exp, search_config(exp), part))[0].samples} for part in ("search", "holdout")]
    assert trained and trained < everything
    assert not (sides[0] | sides[1]) & trained and sides[0] | sides[1] == everything - trained and not sides[0] & sides[1]


def test_search_space_tunes_lambda_and_k(artifact: Path) -> None:
    import optuna

    space = SearchSpace(router={"path": str(artifact), "lam": [1.0, 1000.0], "k": [1, 3]})
    spec = suggest(optuna.trial.FixedTrial({"router.lam": 25.0, "router.k": 2}), space)
    assert spec.selector is not None and spec.selector.kind == "learned"
    assert spec.selector.args == {"path": str(artifact), "lam": 25.0, "k": 2}
    assert [p.args["model"] for p in spec.layers[0].proposers] == [p["model"] for p in Router.load(artifact).proposers]
    selector = build_selector(spec.selector)
    assert isinstance(selector, LearnedSelector) and selector.k == 2 and selector.lam == 25.0


def test_synthesize_router_picks_by_quality_and_diversity_and_is_not_replayed(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    router = train(recorded, out, embedder=HASH, prices=str(recorded / "prices.yaml"), config=TrainConfig(aggregator="synthesize", kinds=("logistic",)))
    x = HashEmbedder(128).encode(["A train runs 10 km each hour for 3 hours. How many km does the train run?"])
    p, usd = router.success(x)[0], router.cost(np.array([70]))[0]
    names = router.meta["names"]
    assert names[router.choose(p, usd, lam=1e4, k=1)[0]] == "train-expert"
    assert len(router.choose(p, usd, lam=0.0)) >= 2  # free to add: diversity pays
    with pytest.raises(ConfigError, match="needs model calls"):
        evaluate(out, recorded, mlflow=False)


def test_a_router_on_an_unpriced_pool_is_a_clear_error(recorded: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["router", "train", str(recorded), "--out", str(tmp_path / "r"), "--embedder", "hash",
                                   "--endpoint", "fake"])
    said = res.output + str(res.exception)
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError) and "ZeroDivisionError" not in said
    assert "no price for" in said and "fake/all-rounder" in said and "--prices" in said, said


def test_cli_train_and_eval_log_to_mlflow(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = tmp_path / "cli-router"
    res = runner.invoke(app, ["router", "train", str(recorded), "--out", str(out), "--embedder", "hash",
                              "--prices", str(recorded / "prices.yaml"), "--kinds", "knn,logistic"])
    assert res.exit_code == 0, res.output
    assert "trained on 112 queries" in res.output
    res = runner.invoke(app, ["router", "eval", str(out), str(recorded)])
    assert res.exit_code == 0, res.output
    assert "curve area: router" in res.output
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("moa-lab-routing")
    [run] = client.search_runs([exp.experiment_id])
    assert run.data.metrics["area_router"] > run.data.metrics["area_static-best"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"curve.png", "eval.json"}


def test_bad_inputs_say_what_is_wrong(recorded: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="routing data not found"):
        train(tmp_path / "nope", tmp_path / "o", embedder=HASH)
    with pytest.raises(ConfigError, match="did you mean 'numeric'"):
        from_recorded(recorded, scorer="numerc")
    with pytest.raises(ConfigError, match="unknown embedder 'hsh'; did you mean 'hash'"):
        train(recorded, tmp_path / "o", embedder="hsh", prices=str(recorded / "prices.yaml"))
    with pytest.raises(ConfigError, match="aggregator must be one of.*did you mean .vote."):
        TrainConfig(aggregator="vot")


def test_a_router_trained_on_a_runlog_is_evaluated_on_its_held_out_queries(tmp_path: Path) -> None:
    runlog = _scripted_runlog(tmp_path / "run.jsonl", 60, 2, {"fruit-expert": 1.0, "train-expert": 1.0, "all-rounder": 50.0})
    train(runlog, tmp_path / "r", embedder=HASH, config=TrainConfig(folds=3), extractor="answer")
    result, _ = evaluate(tmp_path / "r", runlog, mlflow=False)
    assert result.test_queries == 18 and result.train_queries == 42
    cheap = [p for p in result.curve("router") if p.usd < result.summary["best_single"]["usd"] / 5]
    assert max(p.accuracy for p in cheap) >= 0.9  # the right expert per question, at a fiftieth of the dear model


def test_training_twice_in_a_fresh_process_gives_the_same_router(tmp_path: Path) -> None:
    """The first fit in a process once ran with multi-threaded BLAS (loaded after the thread limit
    was set), so the same seed gave another router the second time."""
    import subprocess
    import sys

    script = """
import sys, numpy as np
from moa_lab.embedding import HashEmbedder
from moa_lab.routing import RoutingData, TrainConfig, train_router
rng = np.random.default_rng(0)
queries = [f"question {i} about {rng.choice(['apples', 'trains', 'ships'])} and {rng.integers(100)}" for i in range(600)]
scores = (rng.random((600, 4)) < 0.7).astype(float)
data = RoutingData([str(i) for i in range(600)], queries, [{"agent": "plain", "model": f"m{j}"} for j in range(4)],
                   [f"m{j}" for j in range(4)], scores, np.where(scores > 0, 0, np.arange(1, 5)).astype(np.int32),
                   np.full((600, 4), 1e-4), np.full((600, 4), 100.0), "synthetic")
embedder = HashEmbedder(384)
x = embedder.encode(queries)
config = TrainConfig(kinds=("mlp", "mf"), lambdas=(0.0, 1000.0))
a, b = (train_router(data, x, embedder, {"kind": "hash", "dim": 384}, config) for _ in range(2))
same = {k: v for k, v in a.meta["training"].items() if k != "seconds"} == {k: v for k, v in b.meta["training"].items() if k != "seconds"}
same &= a.meta["operating"]["points"] == b.meta["operating"]["points"] and a.meta["cascade"]["plans"] == b.meta["cascade"]["plans"]
same &= a.meta["predictors"] == b.meta["predictors"] and all(np.array_equal(a.arrays[k], b.arrays[k], equal_nan=True) for k in a.arrays)
sys.exit(0 if same else 1)
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:] or "the second router differs from the first"
