"""The parent MLflow run of an eval carries the summary; MT-Bench turns get runs of their own; the
rubric judge summarises each skill (real MLflow sqlite store, scripted models)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
import yaml

from moa_lab.core import Sample
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.registry import build
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import MlflowTracker, QueryRecord


def _experiment(tmp_path: Path, body: dict) -> Experiment:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "output": str(tmp_path / "out"), **body}))
    return Experiment.load(path)


def test_parent_run_has_every_runs_metrics_the_csv_and_the_summary_files(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    exp = _experiment(tmp_path, {"benchmark": {"kind": "builtin", "tasks": ["addition"], "items": 5},
                                 "topologies": {"one": {"preset": "single", "model": "fake/m"},
                                                "vote": {"preset": "prompt-ensemble", "model": "fake/m", "k": 3}}})
    models = exp.model_set(use_cache=False)
    models.add_client("fake", ScriptedClient(responder=lambda r: "4"))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    tracker = MlflowTracker(tracking_uri=uri, experiment="t", traces=False)

    def summary(folder: Path) -> list[Path]:
        page = folder / "report.html"
        page.write_text("<html>report</html>")
        return [page]

    done = asyncio.run(run_experiment(exp, models, tracker=tracker, summary=summary))
    client = MlflowClient(uri)
    runs = client.search_runs([tracker.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(runs) == 3
    quality = {s.label: s.quality.mean for s in done.summaries}
    assert parent.data.metrics["one__addition/quality"] == quality["one__addition"]
    assert parent.data.metrics["vote__addition/latency_p95_s"] >= 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "report.html"} <= artifacts
    assert (done.folder / "summary.csv").read_text().splitlines()[0].startswith("run,samples")


def test_mt_bench_turns_are_runs_of_their_own(data_dir: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    exp = _experiment(tmp_path, {"benchmark": {"kind": "mt_bench", "path": str(data_dir / "mt_bench"), "limit": 2},
                                 "topologies": {"one": {"preset": "single", "model": "fake/m"}}})
    models = exp.model_set(use_cache=False)
    models.add_client("fake", ScriptedClient(responder=lambda r: "an answer"))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    tracker = MlflowTracker(tracking_uri=uri, experiment="t", traces=False)
    asyncio.run(run_experiment(exp, models, tracker=tracker))
    names = {r.info.run_name for r in MlflowClient(uri).search_runs([tracker.experiment_id])}
    assert names == {"t", "one__turn1", "one__turn2"}


def test_rubric_judge_summarises_each_skill() -> None:
    judge = build("scorer", "judge-rubric", {"model": "j/j", "skills": {"correctness": "right", "conciseness": "short"}})
    records = [QueryRecord(sample=Sample("q", id=str(i)), score=0.5, score_explanation=json.dumps(r))
               for i, r in enumerate([{"correctness": 5, "conciseness": 2}, {"correctness": 3, "conciseness": 2}])]
    records.append(QueryRecord(sample=Sample("q", id="x"), score=None, score_explanation="unparsed verdict: ..."))
    summary = judge.summary(records)
    assert summary["skill/correctness"] == 4.0 and summary["skill/conciseness"] == 2.0
    assert summary["skill/correctness_stderr"] == pytest.approx(1.0) and summary["skill/conciseness_stderr"] == 0.0
    assert not any(math.isnan(v) for v in summary.values())
