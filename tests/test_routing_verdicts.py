"""A graded pool from AlpacaEval judge verdicts, routed one system per instruction: the verdict
loader's table (exclusions, alignment, quality and $), the price file's sources, soft-label fitting,
the `single` router end to end, and the loader on the shared data.

The synthetic pool has two cheap systems that each beat the reference on one kind of instruction
only and a dear one that is good on both: a router that learns anything sends each instruction to
the right cheap system, and no single system matches it at that price."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.core import ConfigError, Message, Usage
from moa_lab.models import PriceTable, estimate_prompt_tokens, estimate_tokens
from moa_lab.routing import TrainConfig, evaluate, load_routing_data, train
from moa_lab.routing._predictors import fit_labels, log_loss
from moa_lab.routing._verdicts import from_verdicts
from moa_lab.selection import Router

ROOT = Path(__file__).resolve().parents[1]
PRICE_FILE = ROOT / "experiments" / "prices" / "alpaca_eval.yaml"
HASH = {"kind": "hash", "dim": 128}
REFERENCE = "gpt4_1106_preview"


def _write(path: Path, rows: list[dict]) -> None:
    text = json.dumps(rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _row(instruction: str, output: str, preference: float | None, system: str) -> dict:
    return {"instruction": instruction, "output_1": "the reference's answer", "generator_1": REFERENCE,
            "output_2": output, "generator_2": system, "dataset": "fixture", "annotator": "weighted_alpaca_eval_gpt4_turbo",
            "preference": preference}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Three instructions; `alpha` answers all, `beta` lacks a verdict on the third; a length-gamed
    variant, NullModel, a system the leaderboard calls adversarial and an unpriced one."""
    folder = tmp_path / "alpaca" / "annotations"
    folder.mkdir(parents=True)
    texts = ["Name a colour.", "Write a haiku about rain.", "Explain tides briefly."]
    _write(folder / "alpha.json.gz", [_row(t, "x" * (40 + 10 * i), 1.0 + 0.25 * i, "alpha") for i, t in enumerate(texts)])
    _write(folder / "beta.json", [_row(t, "y" * 9, p, "beta") for t, p in zip(texts, (2.0, 1.5, None))])
    for name in ("alpha_verbose", "NullModel", "sneaky", "unpriced"):
        _write(folder / f"{name}.json.gz", [_row(t, "z", 1.9, name) for t in texts])
    with open(folder.parent / "leaderboard_alpaca_eval_2.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "length_controlled_winrate", "win_rate", "avg_length", "link", "samples", "filter"])
        writer.writerow(["Sneaky (adversarial)", "90", "80", "10", "", "https://x/results/sneaky/model_outputs.json", "community"])
    return folder


PRICES = {"alpha": {"input": 1.0, "output": 3.0}, "beta": {"input": 0.5, "output": 0.5},
          "alpha_verbose": 1.0, "NullModel": 1.0, "sneaky": 1.0}


def test_verdicts_become_a_graded_table_without_gamed_adversarial_or_unpriced_systems(small: Path) -> None:
    data = from_verdicts(small, prices=PriceTable.from_mapping(PRICES))
    assert data.names == ["alpha", "beta"] and data.graded
    assert data.proposers == [{"agent": "plain", "model": "replay/alpha"}, {"agent": "plain", "model": "replay/beta"}]
    assert set(data.left_out) == {"alpha_verbose", "NullModel", "sneaky", "unpriced"}
    assert "length-gamed" in data.left_out["alpha_verbose"] and "adversarial" in data.left_out["NullModel"]
    assert "adversarial" in data.left_out["sneaky"] and "no list price" in data.left_out["unpriced"]
    # the third instruction has no verdict from beta: dropped, not guessed
    assert data.queries == ["Name a colour.", "Write a haiku about rain."]
    np.testing.assert_allclose(data.scores, [[0.0, 1.0], [0.25, 0.5]])
    np.testing.assert_allclose(data.quality, data.scores)  # graded: the router learns the preference itself
    np.testing.assert_allclose(data.success, [[0.0, 1.0], [0.0, 1.0]])
    usage = Usage(estimate_prompt_tokens((Message("user", "Write a haiku about rain."),)), estimate_tokens("x" * 50))
    assert data.cost[1, 0] == pytest.approx((usage.input_tokens * 1.0 + usage.output_tokens * 3.0) / 1e6)
    assert data.tokens[1, 0] == usage.total_tokens
    assert (data.answers == -1).all()
    assert data.rows([1]).graded and data.rows([1]).left_out == data.left_out


def test_the_annotations_folder_or_its_parent_is_routing_data_and_priced_by_a_file(small: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"models": PRICES}))
    for source in (small, small.parent):
        data = load_routing_data(source, prices=str(prices))
        assert data.names == ["alpha", "beta"] and data.source.startswith("verdicts:")
    with pytest.raises(ConfigError, match="--prices"):
        from_verdicts(small)  # the shipped table prices neither alpha nor beta
    (small / "gamma.json").write_text('[{"instruction": "a"}]')
    prices.write_text(yaml.safe_dump({"models": {**PRICES, "gamma": 1.0}}))
    with pytest.raises(ConfigError, match=r"gamma.json: not an AlpacaEval annotation file \(KeyError"):
        load_routing_data(small, prices=str(prices))


def test_the_price_file_cites_a_dated_source_for_every_price() -> None:
    spec = yaml.safe_load(PRICE_FILE.read_text(encoding="utf-8"))
    sources = spec["sources"]
    for key, text in sources.items():
        assert re.search(r"https://\S+", text) and re.search(r"as of 20\d\d-\d\d", text), f"source {key} needs a URL and a date"
    models = spec["models"]
    assert len(models) >= 40
    for name, entry in models.items():
        assert entry.get("source") in sources, f"{name}: its source must be one of {sorted(sources)}"
        assert entry["input"] >= 0 and entry["output"] >= 0, name
        if entry["source"].startswith("together"):
            assert entry.get("params_b"), f"{name}: a size-tier price needs the model's size (params_b)"
    for name, why in spec["unpriced"].items():
        assert name not in models and len(why) > 20, name
    table = PriceTable.from_mapping(models, where=str(PRICE_FILE))
    assert table.get("claude-2").output_per_mtok == 24.0


def test_graded_labels_are_fitted_as_soft_labels() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, 400) ** 3
    est = fit_labels(LogisticRegression(C=1e6), np.zeros((400, 1)), y)
    assert est.predict_proba(np.zeros((1, 1)))[0, 1] == pytest.approx(y.mean(), abs=1e-4)  # the mean preference
    binary = (y > 0.5).astype(float)
    same = fit_labels(LogisticRegression(), np.c_[y], binary)
    assert same.coef_[0, 0] == pytest.approx(LogisticRegression().fit(np.c_[y], binary).coef_[0, 0])
    # cross-entropy against a graded label is smallest at that label
    assert log_loss(np.array([0.3]), np.array([0.3])) < min(log_loss(np.array([0.3]), np.array([p])) for p in (0.2, 0.4))


def _instruction(i: int, rng: random.Random) -> tuple[str, str]:
    if i % 2:
        return "code", f"Write a Python function that returns the sum of {rng.randint(2, 99)} numbers in a list."
    return "poem", f"Write a short poem about the {rng.choice(['sea', 'moon', 'forest', 'rain', 'city'])} at night."


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 instructions of two kinds; a coder and a poet, each cheap and good at one kind only, and
    a dear all-rounder good at both, judged against the reference."""
    folder = tmp_path_factory.mktemp("graded") / "annotations"
    folder.mkdir()
    rng = random.Random(5)
    items = [_instruction(i, rng) for i in range(160)]
    good = {"coder": "code", "poet": "poem"}
    for system in ("coder", "poet", "all-rounder"):
        rows = []
        for kind, text in items:
            strong = system == "all-rounder" or good[system] == kind
            pref = 1.0 + (rng.uniform(0.75, 1.0) if strong and system != "all-rounder" else
                          rng.uniform(0.55, 0.8) if strong else rng.uniform(0.0, 0.1))
            rows.append(_row(text, "w" * 800, pref, system))
        _write(folder / f"{system}.json.gz", rows)
    (folder.parent / "prices.yaml").write_text(yaml.safe_dump({"models": {
        "coder": {"input": 0.1, "output": 0.1}, "poet": {"input": 0.1, "output": 0.1},
        "all-rounder": {"input": 10.0, "output": 30.0}}}))
    return folder


def test_a_single_router_sends_each_instruction_to_the_right_cheap_system(pool: Path, tmp_path: Path) -> None:
    prices = str(pool.parent / "prices.yaml")
    out = tmp_path / "router"
    train(pool, out, embedder=HASH, config=TrainConfig(aggregator="single", kinds=("knn", "logistic")), prices=prices)
    router = Router.load(out)
    assert router.aggregator == "single" and router.meta["training"]["left_out"] == {}
    assert all(len(router.choose(p, u, lam=0.0, k=3)) == 1 for p, u in zip(np.eye(3), np.ones((3, 3))))
    result, folder = evaluate(out, pool, mlflow=False)
    assert (folder / "curve.png").is_file() and result.summary["quality"] == "win rate against the reference"
    best = result.summary["best_single"]
    assert best["label"] == "all-rounder"
    assert result.area["router"] > result.area["static-best"]
    ratio = result.summary["router_cost_ratio_at_best_single_accuracy"]
    assert ratio is not None and ratio < 0.05  # the all-rounder's win rate at a few % of its $
    assert set(result.summary["router_choices_at_best_single_quality"]) <= {"coder", "poet"}
    assert result.summary["oracle"]["accuracy"] >= max(p.accuracy for p in result.curve("router"))


def test_cli_routes_verdicts_one_system_per_instruction(pool: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-router"
    args = ["router", "train", str(pool), "--out", str(out), "--embedder", "hash", "--kinds", "knn",
            "--prices", str(pool.parent / "prices.yaml")]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "--aggregator single" in str(res.exception)  # a vote over one answer each is no vote
    res = runner.invoke(app, [*args, "--aggregator", "single"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["router", "eval", str(out), str(pool), "--no-mlflow"])
    assert res.exit_code == 0, res.output
    assert "win rate" in res.output and "curve area: router" in res.output


@pytest.mark.slow
def test_shared_verdicts_give_the_leaderboard_win_rates_and_every_system_is_priced_or_listed(data_dir: Path) -> None:
    folder = data_dir / "alpaca_eval" / "annotations"
    if not folder.is_dir():
        pytest.skip(f"no AlpacaEval annotations at {folder}")
    data = load_routing_data(folder, prices=str(PRICE_FILE))
    spec = yaml.safe_load(PRICE_FILE.read_text(encoding="utf-8"))
    files = {p.name.split(".json")[0] for p in folder.iterdir()}
    assert set(data.names) | set(data.left_out) == files
    unpriced = {n for n, why in data.left_out.items() if why.startswith("no list price")}
    assert unpriced == set(spec["unpriced"])  # the file explains every system it leaves out
    assert {"NullModel", "gpt4_gamed"} <= set(data.left_out)
    assert not [n for n in data.names if n.endswith(("_concise", "_verbose"))]
    assert len(data.ids) >= 795 and np.isfinite(data.cost).all() and (data.cost > 0).all()
    from moa_lab.scoring._annotations import read_leaderboard

    board = read_leaderboard(folder.parent / "leaderboard_alpaca_eval_2.csv")
    listed = [(j, name) for j, name in enumerate(data.names) if name in board]  # text_davinci_003 is not
    assert len(listed) >= len(data.names) - 1
    for j, name in listed:  # a few instructions dropped: within a point of the leaderboard
        assert data.scores[:, j].mean() * 100 == pytest.approx(board[name].win_rate, abs=1.0), name
