"""The RunLog: typed records round-trip, version-1 files (written by moa-lab before the records were
typed) read, report and resume like the run that wrote them."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from moa_lab import Sample
from moa_lab.core import ConfigError, Request
from moa_lab.evaluation import evaluate, summarize
from moa_lab.models import MemoryCache, ModelSet, Price, PriceTable
from moa_lab.registry import build
from moa_lab.testing import ScriptedClient
from moa_lab.topology import load_topology
from moa_lab.tracking import VERSION, read_runlog

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "runlog_v1.jsonl"
# the run that wrote the fixture (moa-lab e762253): 4 of these 6 samples finished before it stopped
SAMPLES = [Sample(f"Question {i}: capital of France?", "Paris", f"q{i}") for i in range(6)]
SPEC = load_topology({"preset": "moa-lite", "proposers": ["fake/p1", "fake/p2", "fake/p1"], "aggregator": "fake/agg",
                      "max_tokens": 20})


def _reply(request: Request) -> str:
    return "Lyon" if request.model == "p2" and "3" in request.messages[-1].content else "Paris"


def _models(tmp_path: Path) -> ModelSet:
    prices = PriceTable({"p1": Price(1.0, 2.0, params_b=1.0), "p2": Price(3.0, 4.0), "agg": Price(5.0, 6.0)})
    return ModelSet(clients={"fake": ScriptedClient(responder=_reply)}, prices=prices, cache=MemoryCache(), cache_dir=tmp_path)


def test_a_version_1_runlog_reports_what_its_writer_reported() -> None:
    log = read_runlog(V1)
    assert log.header.label == "lite" and log.header.scorer == "exact" and log.header.samples == 6
    assert [r.id for r in log.records] == ["q0", "q1", "q2", "q3"]
    expected = json.loads((FIXTURES / "runlog_v1.summary.json").read_text())["metrics"]
    metrics = summarize("lite", V1, log.records, 0.0).metrics()
    metrics.pop("wall_s")
    assert metrics == expected  # exactly: the same sums in the same order
    assert log.records[3].proposal_scores == [1.0, 0.0, 1.0]  # p2 said Lyon on q3


def test_a_version_1_runlog_resumes_and_is_rewritten_as_version_2(tmp_path: Path) -> None:
    path = tmp_path / "lite.jsonl"
    shutil.copy(V1, path)
    before = read_runlog(path).records
    summary = asyncio.run(evaluate(SPEC, SAMPLES, _models(tmp_path), build("scorer", "exact"), runlog=path, label="lite",
                                   experiment="v1-fixture", resume=True, concurrency=1))
    assert summary.samples == 6 and summary.resumed == 4 and summary.quality is not None and summary.quality.mean == 1.0
    after = read_runlog(path)
    assert json.loads(path.read_text().splitlines()[0])["version"] == VERSION == 2
    assert after.records[:4] == before  # the finished samples are kept as they were
    assert [r.id for r in after.records] == [s.id for s in SAMPLES]
    fresh = asyncio.run(evaluate(SPEC, SAMPLES, _models(tmp_path), build("scorer", "exact"), runlog=tmp_path / "fresh.jsonl",
                                 concurrency=1))
    assert summary.cost_per_query == pytest.approx(fresh.cost_per_query)  # list price: the same topology, resumed or not
    assert [r.proposal_scores for r in after.records] == [r.proposal_scores for r in read_runlog(fresh.runlog).records]


def test_resuming_with_another_topology_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lite.jsonl"
    shutil.copy(V1, path)
    other = load_topology({"preset": "single", "model": "fake/p1"})
    with pytest.raises(ConfigError, match="another topology"):
        asyncio.run(evaluate(other, SAMPLES, _models(tmp_path), build("scorer", "exact"), runlog=path, resume=True))


def test_records_round_trip_and_totals_are_sums_of_calls(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    summary = asyncio.run(evaluate(SPEC, SAMPLES, _models(tmp_path), build("scorer", "exact"), runlog=path))
    records = read_runlog(path).records
    assert len(records) == 6
    for r in records:
        assert r.cost.list_usd == pytest.approx(sum(c.cost.list_usd for c in r.calls))
        assert r.usage.total_tokens == sum(c.usage.total_tokens for c in r.calls)
        assert r.oracle == max(r.proposal_scores or [0.0])
    assert summary.cost_total == pytest.approx(sum(r.total_cost.paid_usd for r in records))


def test_a_bad_runlog_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"schema": "moa-lab/runlog", "version": 2, "label": "x"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: not a valid version-2 RunLog line \(topology: Field required\)"):
        read_runlog(path)
