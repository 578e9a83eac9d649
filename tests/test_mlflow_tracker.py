"""The MLflow sink against real stores: a temporary sqlite store, and (slow) an MLflow server on PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fresh_postgres, postgres_url

from moa_lab.tracking._mlflow import (
    MlflowTracker,
    default_artifact_location,
    default_tracking_uri,
    flatten,
    redact,
)
from moa_lab.core import Answer, CallRecord, Cost, Message, Proposal, Sample, Usage
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter

T0 = 1764300000.0
AGENTS = ["L1.1 plain(local)", "L1.2 plain(local)", "L1.3 plain(local)"]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MLFLOW_ENV = [
    "MLFLOW_TRACKING_URI",
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS",
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE",
]


@pytest.fixture(autouse=True)
def _restore_mlflow_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tracker sets the process-wide tracking URI (traces need it); put it back after each test."""
    import mlflow

    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri() if "MLFLOW_TRACKING_URI" in os.environ else None
    yield
    mlflow.flush_trace_async_logging()
    mlflow.set_tracking_uri(before)


def query(i: int, *, started: float | None = T0) -> QueryRecord:
    base = (started or 0.0) + 10 * i
    calls = []
    for layer in (1, 2):
        for j, agent in enumerate(AGENTS if layer == 1 else ["L2.1 agg(local)"] * 3):
            calls.append(CallRecord(
                agent=agent, model="local/gemma-3-270m", layer=layer, messages=(Message("user", f"q{i} to {agent}"),),
                output=f"out {layer}.{j}", usage=Usage(50, 3), cost=Cost(0.0 if j == 2 else 0.0001, 0.0001),
                latency_s=0.25, cached=j == 2, attempts=1, error="EndpointError: 503" if (layer, j) == (1, 1) else None,
                started=base + layer + 0.1 * j if started else 0.0,
            ))
    return QueryRecord(
        sample=Sample(f"Capital of France? ({i})", "Paris", f"q{i}"), answer=Answer("Paris", "L2.1 agg(local)"),
        score=1.0 if i % 2 == 0 else 0.0,
        layers=[[Proposal(a, f"out 1.{j}") for j, a in enumerate(AGENTS)], [Proposal("L2.1 agg(local)", "Paris")]],
        latency_s=3.0, calls=calls, started=base if started else 0.0,
    )


PARAMS = {
    "benchmark": "toy",
    "topology": {"layers": [{"proposers": [{"model": "a", "max_tokens": 64}, {"model": "b"}]}], "aggregator": "agg"},
    "backends": {"openai": {"api_key": "sk-live-abcdefghijklmnop", "base_url": "http://x"}},
    "note": "x" * 7000,
}


def test_flatten_and_redact_are_pure() -> None:
    nested = {"a": {"b": [1, {"c": None}]}, "e": [], "f": {}}
    assert flatten(nested) == {"a.b.0": 1, "a.b.1.c": None, "e": [], "f": {}}
    assert flatten({"x": 1}, prefix="p.") == {"p.x": 1}
    out = redact({
        "openai_api_key": "abc", "db_password": "pw", "client_secret": "s", "max_tokens": 64, "tokens": 5,
        "api_key_env": "OPENAI_API_KEY", "msg": "use sk-abcdefgh12345678 here", "plain": "task-oriented risk-free",
        "list": [{"API_KEY": "k"}], "unset_api_key": None,
    })
    assert out == {
        "openai_api_key": "***", "db_password": "***", "client_secret": "***", "max_tokens": 64, "tokens": 5,
        "api_key_env": "OPENAI_API_KEY", "msg": "use *** here", "plain": "task-oriented risk-free",
        "list": [{"API_KEY": "***"}], "unset_api_key": None,
    }
    assert nested == {"a": {"b": [1, {"c": None}]}, "e": [], "f": {}}


def test_default_locations() -> None:
    root = Path("/srv/proj")
    assert default_tracking_uri(root) == "sqlite:////srv/proj/mlruns/mlflow.db"
    assert default_artifact_location(root) == "file:///srv/proj/mlruns/artifacts"


def test_import_does_not_load_mlflow() -> None:
    code = "import sys, moa_lab.tracking, moa_lab.tracking._mlflow; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_in_sqlite_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(tracking_uri=uri, experiment="moa-test")
    run_id = tracker.start_run("toy-run", params=PARAMS, tags={"suite": "toy", "token": "sk-abcdefghijklmnopq"})
    assert tracker.run_id == run_id
    records = [query(0), query(1), query(2, started=None)]
    before = time.time()
    for rec in records:
        tracker.log_query(rec)
    after = time.time()
    tracker.log_query(query(3), trace=False)  # a table row without a trace
    tracker.log_metrics({"accuracy": 0.5, "cost_usd": 0.0018}, step=3)
    runlog = tmp_path / "runlog.jsonl"
    header = RunHeader(label="toy", topology={"backends": {"x": {"api_key": "secret-value"}}}, samples=3)
    with RunLogWriter(runlog, header) as w:
        for rec in records:
            w.write(rec)
    tracker.log_artifact(runlog)
    tracker.end_run()
    assert tracker.run_id is None

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "toy-run"
    assert run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())
    params = run.data.params
    assert params["topology.layers.0.proposers.1.model"] == "b"
    assert params["topology.layers.0.proposers.0.max_tokens"] == "64"
    assert params["topology.aggregator"] == "agg"
    assert params["backends.openai.api_key"] == "***"
    assert params["backends.openai.base_url"] == "http://x"
    assert params["note"] == "x" * 6000
    assert run.data.tags["suite"] == "toy" and run.data.tags["token"] == "***"
    assert run.data.metrics == {"accuracy": 0.5, "cost_usd": 0.0018}
    assert [m.step for m in client.get_metric_history(run_id, "accuracy")] == [3]

    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"queries.json", "runlog.jsonl"} <= artifacts
    table = json.loads(Path(client.download_artifacts(run_id, "queries.json", str(tmp_path / "dl"))).read_text())
    assert table["columns"] == ["id", "input", "answer", "target", "score", *AGENTS, "L2.1 agg(local)",
                                "cost_usd", "list_cost_usd", "latency_s", "error"]
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    assert rows[1]["score"] == 0.0 and rows[0]["L1.2 plain(local)"] == "out 1.1" and rows[2]["answer"] == "Paris"
    logged = Path(client.download_artifacts(run_id, "runlog.jsonl", str(tmp_path / "dl"))).read_text()
    assert "secret-value" not in logged and len(logged.splitlines()) == 4

    traces = list(MlflowClient(tracker.tracking_uri).search_traces(locations=[tracker.experiment_id], run_id=run_id))
    assert len(traces) == 3
    by_id = {t.info.tags["moa.query_id"]: t for t in traces}
    t0 = by_id["q0"]
    assert t0.info.trace_metadata["mlflow.sourceRun"] == run_id
    spans = t0.data.spans
    assert len(spans) == 7
    root = next(s for s in spans if s.parent_id is None)
    assert root.name == "query"
    assert root.inputs == {"input": "Capital of France? (0)"} and root.outputs == {"answer": "Paris"}
    assert root.start_time_ns == int(T0 * 1e9) and root.end_time_ns == int((T0 + 3.0) * 1e9)
    children = sorted((s for s in spans if s.parent_id == root.span_id), key=lambda s: s.start_time_ns)
    assert [s.name for s in children] == [*AGENTS, *["L2.1 agg(local)"] * 3]
    first = children[0]
    assert first.start_time_ns == int((T0 + 1) * 1e9) and first.end_time_ns == int((T0 + 1.25) * 1e9)
    assert first.inputs == {"messages": [{"role": "user", "content": "q0 to L1.1 plain(local)"}]}
    assert first.outputs == "out 1.0"
    assert first.attributes["model"] == "local/gemma-3-270m" and first.attributes["layer"] == 1
    assert first.attributes["input_tokens"] == 50 and first.attributes["paid_usd"] == 0.0001
    assert first.attributes["cached"] is False and first.attributes["attempts"] == 1
    assert children[1].status.status_code == "ERROR" and children[1].attributes["error"] == "EndpointError: 503"
    assert children[2].attributes["cached"] is True
    # A record without "started" ends now and began latency_s earlier.
    r2 = next(s for s in by_id["q2"].data.spans if s.parent_id is None)
    assert before - 0.01 <= r2.end_time_ns / 1e9 <= after + 0.01
    assert r2.end_time_ns - r2.start_time_ns == pytest.approx(3e9, abs=1e3)
    blob = json.dumps([t.to_dict() for t in traces])
    assert "sk-" not in blob

    # A search trial: a nested run under the parent, in the same experiment.
    child_id = tracker.start_run("trial-0", params={"trial": 0}, parent_run_id=run_id)
    tracker.log_metrics({"accuracy": 1.0})
    tracker.end_run(status="FAILED")
    child = client.get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == run_id and child.info.status == "FAILED"
    assert child.info.experiment_id == tracker.experiment_id
    assert "queries.json" not in {a.path for a in client.list_artifacts(child_id)}


def test_default_store_under_project_root(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracker = MlflowTracker(project_root=tmp_path, traces=False)
    assert tracker.tracking_uri == default_tracking_uri(tmp_path.resolve())
    run_id = tracker.start_run("r", params={"a": 1})
    tracker.log_query(query(0))
    tracker.end_run()
    client = MlflowClient(tracker.tracking_uri)
    assert client.get_experiment(tracker.experiment_id).artifact_location == default_artifact_location(tmp_path)
    assert "queries.json" in {a.path for a in client.list_artifacts(run_id)}
    # A second tracker reuses the experiment.
    assert MlflowTracker(project_root=tmp_path, traces=False).experiment_id == tracker.experiment_id


def test_workers_that_start_together_share_a_new_sqlite_store(tmp_path: Path) -> None:
    """MLflow creates a sqlite store's schema on first use; three processes opening a new store at
    once (as `moa-lab search --workers 3` does) each get the experiment, none a schema error."""
    code = ("import sys; from moa_lab.tracking import MlflowTracker; "
            "print(MlflowTracker(tracking_uri=sys.argv[1], experiment='workers').experiment_id)")
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-400:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, found by all three


def test_runs_nest_and_misuse_is_reported(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracker = MlflowTracker(tracking_uri=f"sqlite:///{tmp_path}/m.db", traces=False)
    with pytest.raises(RuntimeError, match="start_run"):
        tracker.log_metrics({"a": 1.0})
    parent = tracker.start_run("study", params={})
    tracker.log_query(query(0))
    child = tracker.start_run("trial-0", params={"trial": 0}, parent_run_id=parent)
    assert tracker.run_id == child
    tracker.end_run()
    assert tracker.run_id == parent  # the open run resumes with its own buffered rows
    tracker.end_run()
    assert tracker.run_id is None
    tracker.end_run()  # a second end is a no-op
    client = MlflowClient(tracker.tracking_uri)
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent
    assert "queries.json" in {a.path for a in client.list_artifacts(parent)}
    assert "queries.json" not in {a.path for a in client.list_artifacts(child)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pg_database() -> Iterator[str]:
    with fresh_postgres("test_moa_mlflow") as name:
        yield postgres_url(name)


@pytest.fixture
def mlflow_server(pg_database: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", pg_database,
         "--artifacts-destination", (tmp_path / "server-artifacts").as_uri(),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 90 s:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        import mlflow

        mlflow.flush_trace_async_logging()  # while the server can still take pending traces
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_run_through_mlflow_server_on_postgresql(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracker = MlflowTracker(tracking_uri=mlflow_server, experiment="moa-server")
    run_id = tracker.start_run("server-run", params=PARAMS)
    for i in range(3):
        tracker.log_query(query(i))
    tracker.log_metrics({"accuracy": 2 / 3})
    runlog = tmp_path / "runlog.jsonl"
    with RunLogWriter(runlog, RunHeader(label="toy", topology={}, samples=1)) as w:
        w.write(query(0))
    tracker.log_artifact(runlog)
    tracker.end_run()

    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["topology.layers.0.proposers.0.model"] == "a"
    assert run.data.params["backends.openai.api_key"] == "***"
    assert run.data.metrics["accuracy"] == pytest.approx(2 / 3)
    assert {"queries.json", "runlog.jsonl"} <= {a.path for a in client.list_artifacts(run_id)}
    assert (tmp_path / "server-artifacts").is_dir()
    traces = list(MlflowClient(tracker.tracking_uri).search_traces(locations=[tracker.experiment_id], run_id=run_id))
    assert len(traces) == 3 and all(len(t.data.spans) == 7 for t in traces)
    root = next(s for s in traces[0].data.spans if s.parent_id is None)
    assert root.end_time_ns - root.start_time_ns == int(3e9)


def test_a_tracker_leaves_no_global_setting_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking._tracking_service import utils

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS", "MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    mlflow.set_tracking_uri(None)
    tracker = MlflowTracker(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="scoped")
    tracker.start_run("run", params={})
    assert os.environ["MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"] == "1"  # applied while the run is open
    tracker.log_query(query(0))
    tracker.end_run()
    assert utils._tracking_uri is None and "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS" not in os.environ
    from mlflow import MlflowClient

    traces = MlflowClient(tracker.tracking_uri).search_traces(locations=[tracker.experiment_id])
    assert len(traces) == 1  # the trace still reached the tracker's own store


def test_a_cascaded_layer_is_traced_stage_by_stage(tmp_path: Path) -> None:
    """Each stage is a span holding the calls it made, with the agreement measured after it."""
    from mlflow import MlflowClient

    from moa_lab.core import Stage

    calls = [CallRecord(agent=a, model="local/gemma-3-270m", messages=(Message("user", "q"),), output=out, usage=Usage(5, 1),
                        cost=Cost(), latency_s=0.1, cached=False, layer=1, stage=stage, started=T0 + stage)
             for a, out, stage in [(AGENTS[0], "x", 1), (AGENTS[1], "y", 1), (AGENTS[2], "x", 2)]]
    record = QueryRecord(sample=Sample("q", "x", "c0"), answer=Answer("x", "vote"), calls=calls, started=T0, latency_s=3.0,
                         layers=[[Proposal(a, c.output) for a, c in zip(AGENTS, calls)]],
                         stages=[Stage(1, 1, 2, 0.5, False), Stage(1, 2, 3, 2 / 3, True)])
    tracker = MlflowTracker(tracking_uri=f"sqlite:///{tmp_path}/m.db", experiment="cascade")
    run_id = tracker.start_run("cascade", params={})
    tracker.log_query(record)
    tracker.end_run()
    [trace] = MlflowClient(tracker.tracking_uri).search_traces(locations=[tracker.experiment_id], run_id=run_id)
    spans = trace.data.spans
    root = next(s for s in spans if s.parent_id is None)
    stages = sorted((s for s in spans if s.parent_id == root.span_id), key=lambda s: s.name)
    assert [s.name for s in stages] == ["layer 1 stage 1", "layer 1 stage 2"]
    assert [(s.attributes["proposals"], s.attributes["agreed"]) for s in stages] == [(2, False), (3, True)]
    assert stages[1].attributes["agreement"] == pytest.approx(2 / 3)
    assert stages[0].start_time_ns == int((T0 + 1) * 1e9) and stages[0].end_time_ns == int((T0 + 1.1) * 1e9)
    for stage, agents in zip(stages, [AGENTS[:2], AGENTS[2:]]):
        children = [s for s in spans if s.parent_id == stage.span_id]
        assert sorted(s.name for s in children) == agents
        assert {s.attributes["stage"] for s in children} == {stage.attributes["stage"]}
