"""A resumed run continues its own MLflow runs; runs a killed process left RUNNING are marked KILLED."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import MlflowTracker, QueryRecord


@pytest.fixture(autouse=True)
def _own_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


def _experiment(tmp_path: Path, base_url: str) -> Experiment:
    (tmp_path / "e.yaml").write_text(json.dumps({
        "name": "resumed", "queries": [f"question {i}" for i in range(6)], "output": "runs", "concurrency": 1, "cache": "memory",
        "topology": {"preset": "single", "model": "srv/m"},
        "endpoints": {"srv": {"kind": "openai", "base_url": base_url}},
        "prices": {"m": {"input": 1.0, "output": 2.0}},
    }))
    return Experiment.load(tmp_path / "e.yaml")


def test_a_resumed_run_continues_its_mlflow_runs_and_a_killed_ones_are_marked(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with OpenAITestServer() as server:
        exp = _experiment(tmp_path, server.base_url)

        async def go(resume: bool, stop_after: int | None) -> object:
            stop = asyncio.Event()
            seen = []

            def on_record(name: str, record: QueryRecord) -> None:
                seen.append(record)
                if stop_after is not None and len(seen) >= stop_after:
                    stop.set()

            tracker = MlflowTracker(tracking_uri=uri, experiment="resumed", traces=False)
            async with exp.model_set() as models:
                return await run_experiment(exp, models, resume=resume, tracker=tracker, on_record=on_record, stop=stop)

        first = asyncio.run(go(False, 2))
        assert first.stopped
        ids = json.loads((first.folder / "run.json").read_text())
        second = asyncio.run(go(True, None))
        assert second.folder == first.folder and json.loads((second.folder / "run.json").read_text()) == ids

        from mlflow import MlflowClient

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("resumed").experiment_id])
        assert sorted(r.info.run_id for r in runs) == sorted(ids.values())  # no second run for the resumed topology
        assert {r.info.status for r in runs} == {"FINISHED"}

        # a process killed mid-run leaves its runs RUNNING; the next invocation marks them KILLED
        tracker = MlflowTracker(tracking_uri=uri, experiment="resumed", traces=False)
        orphan = tracker.start_run("killed", params={})
        dead = tmp_path / "runs" / "resumed" / "20000101-000000"
        dead.mkdir()
        (dead / "run.json").write_text(json.dumps({"": orphan}))
        asyncio.run(go(False, None))
    assert client.get_run(orphan).info.status == "KILLED"
