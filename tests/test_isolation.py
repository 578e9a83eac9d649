"""One failing sample never stops a run: a plugin's exception is that sample's recorded failure,
with its traceback; the command says how many failed and exits 3."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moa_lab.agents import proposer
from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation import Experiment, groups
from moa_lab.models import EndpointConfig, MemoryCache, ModelSet, Price, PriceTable
from moa_lab.pipeline import Pipeline
from moa_lab.testing import OpenAITestServer
from moa_lab.topology import load_topology
from moa_lab.tracking import read_runlog

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
from moa_lab.agents import proposer
from moa_lab.core import Message, Proposal, Sampling


class Picky:
    """Asks its model, but has a bug on one question."""

    def __init__(self, model):
        self.model = model

    async def propose(self, query, ctx):
        if query == "question 7":
            raise ValueError("picky cannot handle question 7")
        record = await ctx.call(self.model, (Message("user", query),), Sampling(max_tokens=5))
        return Proposal(ctx.agent, record.output, record.error)


@proposer("picky")
def picky(model: str = "srv/m"):
    """A plugin proposer with a bug on one question."""
    return Picky(model)
'''


def install_plugin(folder: Path) -> None:
    """A plugin package found through the `moa_lab.plugins` entry point, as pip would install it."""
    (folder / "moa_plugin_picky.py").write_text(PLUGIN)
    dist = folder / "moa_plugin_picky-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moa-plugin-picky\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[moa_lab.plugins]\npicky = moa_plugin_picky\n")


def test_a_plugin_raising_on_one_of_twenty_samples_fails_that_sample_only(tmp_path: Path) -> None:
    # Must show 7
    install_plugin(tmp_path)
    with OpenAITestServer(responder=lambda body: "yes") as server:
        queries = [{"input": f"question {i}", "target": "yes", "id": f"q{i}"} for i in range(20)]
        (tmp_path / "e.yaml").write_text(json.dumps({
            "name": "plugin", "queries": queries, "scorer": "exact", "output": "runs", "concurrency": 4,
            "topology": {"layers": [{"proposers": [{"agent": "picky", "model": "srv/m"}]}]},
            "endpoints": {"srv": {"kind": "openai", "base_url": server.base_url}},
            "prices": {"m": {"input": 1.0, "output": 2.0}},
        }))
        env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "MOA_LAB_CACHE_DIR": str(tmp_path / "cache"),
               "COLUMNS": "200"}
        done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "eval", str(tmp_path / "e.yaml"), "--no-mlflow"],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "1 of 20 samples failed" in done.stdout
    records = read_runlog(next((tmp_path / "runs" / "plugin" / "latest").glob("*.jsonl"))).records
    scored = [r for r in records if r.error is None and r.score == 1.0]
    [failed] = [r for r in records if r.error is not None]
    assert len(records) == 20 and len(scored) == 19
    assert failed.id == "q7" and "ValueError: picky cannot handle question 7" in failed.error
    assert failed.traceback is not None and 'raise ValueError("picky cannot handle question 7")' in failed.traceback


class Boom:
    async def propose(self, query: str, ctx: object) -> object:
        raise ValueError(f"no answer for {query}")


@proposer("boom-test")
def boom() -> Boom:
    """A proposer whose bug raises on every query."""
    return Boom()


def test_a_proposer_raising_fails_its_proposal_and_the_layer_goes_on(tmp_path: Path) -> None:
    spec = load_topology({"layers": [{"proposers": [{"agent": "plain", "model": "srv/m"}, {"agent": "boom-test"}]}],
                          "aggregator": {"agent": "synthesize", "model": "srv/m"}})
    with OpenAITestServer(responder=lambda body: "fine") as server:
        models = ModelSet({"srv": EndpointConfig(kind="openai", base_url=server.base_url)},
                          prices=PriceTable({"m": Price(1.0, 1.0)}), cache=MemoryCache(), cache_dir=tmp_path)
        record = asyncio.run(Pipeline(spec, models).run_query(Sample("why?", id="s")))
    assert record.error is None and record.answer is not None and record.answer.text == "fine"
    assert [p.ok for p in record.layers[0]] == [True, False]
    assert "ValueError: no answer for why?" in (record.layers[0][1].error or "")
    assert record.traceback is not None and 'raise ValueError(f"no answer for {query}")' in record.traceback


def test_duplicate_sample_ids_are_refused_naming_both(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"id": "a", "input": "x"}\n{"id": "b", "input": "y"}\n{"id": "a", "input": "z"}\n')
    (tmp_path / "e.yaml").write_text("name: d\ntopology: {preset: single, model: local}\nbenchmark: {kind: jsonl, path: d.jsonl}\n")
    with pytest.raises(ConfigError, match=r"d.jsonl: lines 1 and 3 have the same id 'a'"):
        groups(Experiment.load(tmp_path / "e.yaml"))
    (tmp_path / "q.yaml").write_text("name: q\ntopology: {preset: single, model: local}\n"
                                     "queries: [{input: x, id: a}, {input: y, id: a}]\n")
    with pytest.raises(ConfigError, match=r"q.yaml: samples 1 and 2 have the same id 'a'"):
        groups(Experiment.load(tmp_path / "q.yaml"))


def test_a_non_utf8_dataset_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(b'{"input": "fine"}\n{"input": "caf\xe9"}\n')
    (tmp_path / "e.yaml").write_text("name: d\ntopology: {preset: single, model: local}\nbenchmark: {kind: jsonl, path: d.jsonl}\n")
    with pytest.raises(ConfigError, match=r"d.jsonl:2: not UTF-8 text"):
        groups(Experiment.load(tmp_path / "e.yaml"))


def test_an_empty_proposer_list_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"proposers: \[\] names no proposer"):
        load_topology({"preset": "moa-lite", "proposers": []})


def test_a_corrupt_runlog_line_is_named(tmp_path: Path) -> None:
    from moa_lab.tracking import RunHeader, RunLogWriter

    path = tmp_path / "r.jsonl"
    with RunLogWriter(path, RunHeader(label="x", topology={}, samples=1)):
        pass
    with path.open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ConfigError, match=r"r.jsonl:2: corrupt line in RunLog"):
        read_runlog(path)


def test_a_non_utf8_experiment_file_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_bytes(b"name: d\ntopology: {preset: single, model: local}\nqueries: [caf\xe9]\n")
    with pytest.raises(ConfigError, match=r"e.yaml:3: not UTF-8 text \(byte 62\); save the file as UTF-8"):
        Experiment.load(tmp_path / "e.yaml")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moa_lab.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "MOA_LAB_CACHE_DIR": str(cwd / "cache"), "COLUMNS": "300"})


def test_a_damaged_router_artifact_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    import numpy as np

    from moa_lab.selection import Router
    from moa_lab.selection._artifact import FORMAT, VERSION

    art = tmp_path / "art"
    art.mkdir()
    (art / "router.json").write_bytes(b'{"format": "moa-lab-router", \xff')
    with pytest.raises(ConfigError, match=r"art/router.json: damaged \(UnicodeDecodeError.*train the router again"):
        Router.load(art)
    (art / "router.json").write_text(json.dumps({"format": FORMAT, "version": VERSION}))
    np.savez_compressed(art / "arrays.npz", knn_x=np.arange(4096, dtype=np.float64))
    packed = bytearray((art / "arrays.npz").read_bytes())
    packed[len(packed) // 2: len(packed) // 2 + 64] = b"\x00" * 64  # a damaged member inside a well-formed zip
    (art / "arrays.npz").write_bytes(bytes(packed))
    with pytest.raises(ConfigError, match=r"art/arrays.npz: damaged \(.*\); train the router again \(`moa-lab router train`\)"):
        Router.load(art)
    (art / "arrays.npz").write_bytes(b"not a zip file at all")
    done = _cli("router", "eval", str(art), str(tmp_path / "held-out.jsonl"), "--no-mlflow", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(f"error: {art / 'arrays.npz'}: damaged (")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 2  # the line, and how to see the traceback


def test_a_damaged_budget_ledger_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("name: b\ntopology: {preset: single, model: local}\nqueries: [hi]\n"
                                     "budget: {usd: 1}\nprices: {gemma-3-270m: 0}\noutput: out\ntracking: {mlflow: false}\n")
    run = tmp_path / "out" / "b" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "budget.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    done = _cli("eval", str(tmp_path / "e.yaml"), "--resume", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"error: {run / 'budget.sqlite'}: the budget ledger cannot be used (file is not a database)")
    assert "do not delete it" in first
