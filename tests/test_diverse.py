"""The diverse selector and the router's diversity knob. The synthetic pool has two clones that are
the most often right and always wrong together with the same answer, a fruit expert and a train
expert (each right on its own kind of question), two independent middling models and a guesser: a
selector that sees diversity calls one clone, the local expert and an independent model; one that
ranks by competence alone calls both clones, whose shared mistakes then outvote the expert."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.core import ConfigError, Sample
from moa_lab.models import MemoryCache, ModelSet
from moa_lab.pipeline import Pipeline
from moa_lab.routing import TrainConfig, build_reference, compare_selectors, load_routing_data, ratio_interval, train
from moa_lab.routing._diversity import consensus, error_similarity
from moa_lab.selection import DiverseSelector, Reference, SubsetRule, VoteModel, build_selector
from moa_lab.selection._kernels import answer_similarity, dpp_greedy
from moa_lab.testing import HashEmbedder, ScriptedClient
from moa_lab.topology import AgentSpec, LayerSpec, SelectorSpec, TopologySpec

HASH = {"kind": "hash", "dim": 128}
MODELS = ("clone-a", "clone-b", "fruit-expert", "train-expert", "solo-e", "solo-g", "guesser")
PRICES = "models:\n" + "".join(f"  {m}: {{input: 1.0, output: 1.0}}\n" for m in MODELS)


def _questions(n: int = 240) -> list[tuple[str, str, int]]:
    rng = random.Random(11)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 9)
        if i % 2:
            out.append((f"q{i}", f"Anna has {a} apples and buys {b} more apples at the market. How many apples has she?", a + b))
        else:
            out.append((f"q{i}", f"A train runs {a} km each hour for {b} hours. How many km does the train run?", a * b))
    return out


def _draw(model: str, question: str) -> float:
    """A uniform number fixed by (model, question): the recorded pool and a live call agree."""
    return int(hashlib.sha256(f"{model}\0{question}".encode()).hexdigest()[:8], 16) / 2**32


def _reply(model: str, question: str, gold: int) -> str:
    fruit = "apples" in question
    if model.startswith("clone"):
        right = _draw("clone", question) >= 0.12  # the two clones err on the same questions, alike
    else:
        rate = {"fruit-expert": 0.95 if fruit else 0.45, "train-expert": 0.45 if fruit else 0.95,
                "solo-e": 0.8, "solo-g": 0.8, "guesser": 0.3}[model]
        right = _draw(model, question) < rate
    wrong = gold + {"clone-a": 1, "clone-b": 1, "fruit-expert": 2, "train-expert": 3, "solo-e": 4, "solo-g": 5, "guesser": 6}[model]
    return f"The answer is {gold if right else wrong}."


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pool's recorded replies in the GSM8K layout, and a price file."""
    folder = tmp_path_factory.mktemp("pool")
    qs = _questions()
    with gzip.open(folder / "questions.jsonl.gz", "wt") as fh:
        for qid, text, gold in qs:
            fh.write(json.dumps({"id": qid, "question": text, "answer": str(gold)}) + "\n")
    (folder / "responses").mkdir()
    for model in MODELS:
        with gzip.open(folder / "responses" / f"{model}.jsonl.gz", "wt") as fh:
            for qid, text, gold in qs:
                fh.write(json.dumps({"id": qid, "model": model, "output": _reply(model, text, gold)}) + "\n")
    (folder / "prices.yaml").write_text(PRICES)
    return folder


@pytest.fixture(scope="module")
def reference(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "reference"
    build_reference(recorded, out, embedder=HASH, prices=str(recorded / "prices.yaml"), endpoint="fake")
    return out


def _names(reference: Reference, chosen: list[int]) -> set[str]:
    return {reference.meta["names"][j] for j in chosen}


def test_diverse_calls_one_clone_the_local_expert_and_an_independent_model(reference: Path) -> None:
    ref = Reference.load(reference)
    embedder = HashEmbedder(128)
    qs = _questions(300)[240:]  # questions the reference does not hold
    both_clones = {"diverse": 0, "top": 0}
    expert = 0
    for _, text, _ in qs:
        x = embedder.encode([text])[0]
        diverse, top = _names(ref, ref.choose(x, k=3)), _names(ref, ref.choose(x, k=3, diversity=0.0))
        both_clones["diverse"] += {"clone-a", "clone-b"} <= diverse
        both_clones["top"] += {"clone-a", "clone-b"} <= top
        expert += ("fruit-expert" if "apples" in text else "train-expert") in diverse
        assert "guesser" not in diverse
    assert both_clones["top"] >= 0.9 * len(qs)  # competence alone: the clones are the two most often agreed with
    assert both_clones["diverse"] <= 0.1 * len(qs)
    assert expert >= 0.9 * len(qs)  # the neighbourhood tells which expert is competent here


def test_diverse_votes_better_than_top_k_on_held_out_questions(recorded: Path, reference: Path) -> None:
    result = compare_selectors(reference, recorded, [1, 3])
    assert len(result.test_ids) == 72 and result.train_queries == 168
    vote = {m: result.get(m, 3).vote.mean() for m in ("diverse", "top-k", "top-k-train", "random-k")}
    assert vote["diverse"] > vote["top-k"] + 0.05 and vote["diverse"] > vote["top-k-train"] + 0.05, vote
    ratio, low, high = ratio_interval([result], "vote", "diverse", "top-k", 3)
    assert ratio == pytest.approx(vote["diverse"] / vote["top-k"]) and 1.0 < low <= ratio <= high
    assert np.array_equal(result.get("diverse", 1).vote, result.get("top-k", 1).vote)  # one proposer: nothing to diversify
    assert result.get("random-k", 3).usd.mean() == pytest.approx(result.get("diverse", 3).usd.mean(), rel=0.2)


def test_a_labelled_reference_reads_being_right_where_the_consensus_is_wrong(recorded: Path, tmp_path: Path) -> None:
    """Where the clones' shared mistake is the plurality, the label-free reference counts it as the
    consensus; a labelled reference counts being right."""
    free = build_reference(recorded, tmp_path / "free", embedder=HASH, prices=str(recorded / "prices.yaml"), endpoint="fake")
    labelled = build_reference(recorded, tmp_path / "labels", embedder=HASH, prices=str(recorded / "prices.yaml"),
                               endpoint="fake", labels=True)
    assert free.meta["training"]["competence"] == "consensus" and labelled.meta["training"]["competence"] == "labels"
    data = load_routing_data(recorded, prices=str(recorded / "prices.yaml"), endpoint="fake", scorer="numeric", extractor="answer")
    train_rows, _ = data.split(0.3, 0)
    right = np.nan_to_num(data.rows(train_rows).success)
    assert np.array_equal(labelled.arrays["agree"], right.astype(np.float32))
    names = free.meta["names"]
    guesser = names.index("guesser")
    assert labelled.arrays["pool_agree"][guesser] == pytest.approx(right[:, guesser].mean())
    assert (np.nan_to_num(free.arrays["agree"], nan=-1) != labelled.arrays["agree"]).any()


def test_consensus_is_the_plurality_and_ties_go_to_the_proposer_that_agrees_most() -> None:
    answers = np.array([[1, 2, 0, 0], [1, 2, 0, 0], [0, 1, 2, 2], [-1, -1, -1, -1], [0, 0, 1, 1]])
    known = np.ones_like(answers, bool)
    z = consensus(answers, known)
    assert list(z[:4]) == [0, 0, 2, -1]
    assert z[4] == 1  # a 2-2 tie: proposers 2 and 3 give the plurality answer more often than 0 and 1
    known[4, 2:] = False  # proposers 2 and 3 were not called on the last query
    assert consensus(answers, known)[4] == 0


def test_dpp_keeps_a_competent_proposer_unless_one_chosen_makes_its_mistakes() -> None:
    gram = np.array([[0.1, 0.1, 0.0], [0.1, 0.1, 0.0], [0.0, 0.0, 0.2]])  # 0 and 1 always deviate alike
    similarity = answer_similarity(gram, 0.01)
    assert similarity[0, 1] == pytest.approx(0.1 / 0.11) and similarity[0, 2] == 0.0
    quality = np.array([0.9, 0.89, 0.8])
    assert dpp_greedy(quality, similarity, 2, diversity=0.0) == [0, 1]
    assert dpp_greedy(quality, similarity, 2, diversity=1.0) == [0, 2]
    assert dpp_greedy(quality, np.eye(3), 2, diversity=1.0) == [0, 1]  # no shared mistakes: the most competent


def test_reference_round_trip_and_its_refusals(reference: Path, tmp_path: Path) -> None:
    ref = Reference.load(reference)
    again = Reference.load(ref.save(tmp_path / "copy"))
    assert again.meta["neighbours"] == ref.meta["neighbours"] and again.meta["proposers"] == ref.meta["proposers"]
    assert all(np.array_equal(again.arrays[k], ref.arrays[k], equal_nan=True) for k in ref.arrays)
    x = HashEmbedder(128).encode(["Anna has 3 apples and buys 4 more apples at the market. How many apples has she?"])[0]
    assert again.choose(x, k=3) == ref.choose(x, k=3)
    assert ref.meta["training"]["split"] == {"holdout": True, "test_fraction": 0.3, "seed": 0}
    assert "labels" not in json.dumps(ref.meta) and set(ref.arrays) == {"memory", "agree", "deviation", "pool_agree", "pool_gram"}

    pool = [AgentSpec(**p) for p in ref.proposers]
    with pytest.raises(ConfigError, match="reference proposer pool does not match.*\n.*not in the reference: .*fake/other"):
        ref.align(pool[:6] + [AgentSpec(agent="plain", model="fake/other")])
    with pytest.raises(ConfigError, match="reference was trained on embedder 'hash-128'"):
        build_selector(SelectorSpec(kind="diverse", path=str(reference), k=2, embedder={"kind": "hash", "dim": 64}))
    with pytest.raises(ConfigError, match="selector k must be at least 1"):
        build_selector(SelectorSpec(kind="diverse", path=str(reference), k=0))
    with pytest.raises(ConfigError, match="diversity must be at least 0"):
        build_selector(SelectorSpec(kind="diverse", path=str(reference), k=2, diversity=-1))
    meta = json.loads((reference / "reference.json").read_text())
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "reference.json").write_text(json.dumps(meta | {"version": 99}))
    with pytest.raises(ConfigError, match="version 99"):
        Reference.load(tmp_path / "future")
    with pytest.raises(ConfigError, match="not a diverse-selector reference.*moa-lab router diverse"):
        Reference.load(tmp_path)
    Reference(meta, {k: v for k, v in ref.arrays.items() if k != "pool_gram"}).save(tmp_path / "incomplete")
    with pytest.raises(ConfigError, match="lacks pool_gram"):
        Reference.load(tmp_path / "incomplete")
    Reference(meta, ref.arrays | {"agree": ref.arrays["agree"][:, :3]}).save(tmp_path / "misfit")
    with pytest.raises(ConfigError, match="agree .* do not fit|do not fit .*agree"):
        Reference.load(tmp_path / "misfit")


def test_the_diverse_selector_in_a_live_topology_calls_only_its_choice(reference: Path) -> None:
    qs = _questions(280)[240:]
    gold = {text: g for _, text, g in qs}
    client = ScriptedClient(responder=lambda r: _reply(r.model.rsplit("/", 1)[-1], r.messages[-1].content, gold[r.messages[-1].content]))
    spec = TopologySpec(
        layers=(LayerSpec(proposers=tuple(AgentSpec(agent="plain", model=f"fake/{m}") for m in reversed(MODELS))),),  # any order
        aggregator=AgentSpec(agent="vote", extractor="answer"),
        selector=SelectorSpec(kind="diverse", path=str(reference), k=3),
    )
    pipeline = Pipeline(spec, ModelSet(clients={"fake": client}, cache=MemoryCache()))
    assert isinstance(pipeline.selector, DiverseSelector)
    results = asyncio.run(pipeline.run([Sample(text, str(g), qid) for qid, text, g in qs]))
    right = 0
    for result in results:
        called = {c.model for c in result.calls}
        assert len(result.selected) == 3 and called == {spec.layers[0].proposers[i].args["model"] for i in result.selected}
        assert not {"fake/clone-a", "fake/clone-b"} <= called
        assert result.answer is not None
        right += result.answer.text.endswith(f" {gold[result.sample.input]}.")
    assert sum(len(r.calls) for r in results) == 3 * len(qs) >= len(client.requests)  # repeated questions are cached
    assert right >= 0.85 * len(qs)


def test_a_topology_whose_pool_differs_fails_before_any_call(reference: Path) -> None:
    spec = TopologySpec(layers=(LayerSpec(proposers=(AgentSpec(agent="plain", model="fake/clone-a"),
                                                     AgentSpec(agent="plain", model="fake/x"))),),
                        aggregator=AgentSpec(agent="vote"), selector=SelectorSpec(kind="diverse", path=str(reference), k=1))
    client = ScriptedClient()
    with pytest.raises(ConfigError, match="does not match the topology's layer 1"):
        Pipeline(spec, ModelSet(clients={"fake": client}, cache=MemoryCache()))
    assert client.requests == []


def test_router_diversity_trades_quality_for_errors_that_differ(recorded: Path, tmp_path: Path) -> None:
    router = train(recorded, tmp_path / "router", embedder=HASH, prices=str(recorded / "prices.yaml"), endpoint="fake",
                   config=TrainConfig(kinds=("logistic",), diversity=0.5))
    names = router.meta["names"]
    a, b, e, g = (names.index(m) for m in ("clone-a", "clone-b", "solo-e", "solo-g"))
    similarity = router.arrays["error_similarity"]
    assert similarity[a, b] > 0.9 and similarity[a, e] < 0.05  # the clones' wrong answers coincide; the others' do not
    assert router.meta["defaults"]["diversity"] == 0.5

    rule = SubsetRule(VoteModel(0.5), similarity=similarity)
    p = np.full(len(names), 0.5)
    p[[a, b]], p[[e, g]] = 0.9, 0.8
    usd = np.zeros(len(names))
    assert set(rule.choose(p, usd, lam=0.0, k=3)) in ({a, b, e}, {a, b, g})  # errors assumed independent: the best three
    assert set(rule.choose(p, usd, lam=0.0, k=3, diversity=0.1)) == {a, e, g}
    with pytest.raises(ConfigError, match="diversity must be at least 0"):
        rule.choose(p, usd, lam=0.0, diversity=-0.1)
    old = SubsetRule(VoteModel(0.5))
    with pytest.raises(ConfigError, match="no error similarity.*retrain"):
        old.choose(p, usd, lam=0.0, diversity=1.0)
    learned = build_selector(SelectorSpec(kind="learned", path=str(tmp_path / "router")))
    assert learned.diversity == 0.5  # type: ignore[attr-defined]
    assert build_selector(SelectorSpec(kind="learned", path=str(tmp_path / "router"), diversity=0)).diversity == 0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="diversity must be at least 0"):
        TrainConfig(diversity=-1)


def test_error_similarity_reads_labels_and_ignores_uncalled_cells(recorded: Path) -> None:
    data = load_routing_data(recorded, prices=str(recorded / "prices.yaml"), endpoint="fake", scorer="numeric", extractor="answer")
    full = error_similarity(data)
    data.scores[::2, 0] = np.nan  # clone-a not called on half the questions
    data.answers[::2, 0] = -1
    half = error_similarity(data)
    assert full[0, 1] > 0.9 and 0.5 < half[0, 1] < full[0, 1]


def test_cli_builds_a_reference_and_compares_it(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "ref"
    res = CliRunner().invoke(app, ["router", "diverse", str(recorded), "--out", str(out), "--embedder", "hash",
                                   "--prices", str(recorded / "prices.yaml"), "--endpoint", "fake", "--compare", "1,3"])
    assert res.exit_code == 0, res.output + str(res.exception)
    assert "reference: 168 queries, 7 proposers" in res.output and "vote accuracy on the held-out split: 72 queries" in res.output
    assert (out / "reference.json").is_file() and (out / "arrays.npz").is_file()
    res = CliRunner().invoke(app, ["router", "diverse", str(recorded), "--out", str(tmp_path / "bad"), "--embedder", "hash",
                                   "--prices", str(recorded / "prices.yaml"), "--endpoint", "fake", "--compare", "9"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError) and "between 1 and the pool's 7" in str(res.exception)
