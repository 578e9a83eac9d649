"""Routers end to end: the real MiniLM embedder, the 18-model GSM8K pool through the CLI, and a learned
selector in a live topology on the embedded model that calls only the proposers it chose."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.routing import train
from moa_lab.tracking import read_runlog

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers", reason="the routing extra is not installed (pip install -e '.[routing]')")
    from moa_lab.embedding import build_embedder

    return build_embedder("minilm")


def test_minilm_embeds_offline_and_puts_paraphrases_close(minilm) -> None:  # type: ignore[no-untyped-def]
    x = minilm.encode(["How many apples does Tom have left?", "How many apples remain with Tom?", "What is the capital of Peru?"])
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.3


def test_minilm_on_onnxruntime_gives_the_vectors_of_sentence_transformers(minilm) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[routing]')")
    from moa_lab.embedding import MiniLMEmbedder

    long = " ".join(f"Tom has {i} apples and gives {i + 1} to each of his friends." for i in range(60))  # > 256 tokens
    texts = ["How many apples does Tom have left?", long, "", "Ünïcode, 日本語 and 🙂", "a"] * 3
    onnx, torch = MiniLMEmbedder(runtime="onnx").encode(texts), MiniLMEmbedder(runtime="torch").encode(texts)
    assert onnx.dtype == np.float32 and onnx.shape == torch.shape == (15, 384)
    assert np.abs(onnx - torch).max() < 1e-5
    assert np.abs(onnx[1] - onnx[0]).max() > 0.01  # the long text is not padding: it embeds differently


def test_minilm_int8_is_its_own_embedder_close_to_minilm(minilm) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[routing]')")
    from moa_lab.embedding import build_embedder

    texts = ["How many apples does Tom have left?", "What is the capital of Peru?", "Ünïcode, 日本語 and 🙂",
             "Janet's ducks lay 16 eggs per day; she eats three and bakes with four. How much does she make?"]
    int8 = build_embedder("minilm-int8")
    x, again, full = int8.encode(texts), build_embedder("minilm-int8").encode(texts), minilm.encode(texts)
    assert int8.id != minilm.id and int8.dim == minilm.dim == 384  # a router trained on one refuses the other
    assert x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.array_equal(x, again)  # the quantized file is made once and gives the same vectors every time
    cosine = (x * full).sum(axis=1)
    assert cosine.min() > 0.95 and np.abs(x - full).max() > 1e-4  # close to minilm's vectors, yet not the same


def test_gsm8k_pool_train_and_eval_through_the_cli(minilm, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "router"
    runner = CliRunner()
    res = runner.invoke(app, ["router", "train", str(data_dir / "gsm8k"), "--aggregator", "vote", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["router", "eval", str(out), str(data_dir / "gsm8k"), "--no-mlflow"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "eval" / "eval.json").read_text())
    methods = {p["method"] for p in result["points"]}
    assert methods == {"router", "routing-only", "router-true-p", "cascade", "best-single", "cheapest", "all", "top-k", "random-k",
                       "static-best", "oracle"}
    assert result["summary"]["area_cascade"] is not None  # the learned cascades were replayed on the held-out split
    assert result["test_queries"] == 396 and result["train_queries"] == 923
    assert len([p for p in result["points"] if p["method"] == "top-k"]) == 18
    all18 = next(p for p in result["points"] if p["method"] == "all")
    assert all18["calls"] == 18
    assert all(0 < p["usd"] <= all18["usd"] + 1e-12 for p in result["points"] if p["method"] != "oracle")


def test_learned_selector_in_a_live_embedded_topology(minilm, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(cache_dir))
    pool_exp = Experiment.load(ROOT / "experiments" / "router_embedded.yaml", output=str(tmp_path / "runs"))
    [pool] = asyncio.run(run_experiment(pool_exp, pool_exp.model_set())).summaries
    artifact = tmp_path / "router"
    train(pool.runlog, artifact, holdout=False, extractor="number")
    text = (ROOT / "experiments" / "router_embedded_routed.yaml").read_text()
    assert "path: ../runs/router-embedded/router" in text
    (tmp_path / "routed.yaml").write_text(text.replace("../runs/router-embedded/router", str(artifact)))
    routed_exp = Experiment.load(tmp_path / "routed.yaml", output=str(tmp_path / "runs"))
    assert routed_exp.topologies("addition")["routed"].selector.args["path"] == str(artifact)  # type: ignore[union-attr]
    summaries = {s.label: s for s in asyncio.run(run_experiment(routed_exp, routed_exp.model_set())).summaries}
    routed, everyone = summaries["routed__addition"], summaries["pool__addition"]
    records = read_runlog(routed.runlog).records
    pool_records = read_runlog(pool.runlog).records
    assert len(records) == 40
    labels = [p.agent for p in pool_records[0].layers[0]]
    for r in records:
        assert r.selected is not None and 1 <= len(r.selected) <= 3
        called = sorted(c.agent for c in r.calls)
        assert called == sorted(labels[i] for i in r.selected)  # only the chosen proposers were called
    assert everyone.calls == 4 * 40 and routed.calls < everyone.calls
