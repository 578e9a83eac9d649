"""One writer per RunLog: a second writer is refused before it calls anything, so no call is paid twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import RunHeader, RunLogWriter, WriterLocked, read_runlog

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_runlog_writer_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    header = RunHeader(label="x", topology={}, samples=1)
    with RunLogWriter(path, header):
        with pytest.raises(WriterLocked, match=rf"{path.name} is being written by pid {os.getpid()}"):
            RunLogWriter(path, header)
    with RunLogWriter(path, header):  # released on close
        pass
    assert read_runlog(path).records == []


def test_two_processes_on_one_run_the_second_is_refused_and_no_call_is_paid_twice(tmp_path: Path) -> None:
    # Must show 8: `eval` runs; `eval --resume` of the same run starts beside it
    gate = threading.Event()  # held shut until the second process is done: no race with the first's speed

    def reply(body: dict) -> str:
        if body["messages"][-1]["content"] not in ("question 0", "question 1"):
            gate.wait(120)
        return "an answer"

    with OpenAITestServer(responder=reply) as server:
        queries = [{"input": f"question {i}", "id": f"q{i}"} for i in range(20)]
        (tmp_path / "e.yaml").write_text(json.dumps({
            "name": "two", "queries": queries, "output": "runs", "concurrency": 2,
            "topology": {"preset": "single", "model": "srv/m"},
            "endpoints": {"srv": {"kind": "openai", "base_url": server.base_url}},
            "prices": {"m": {"input": 1.0, "output": 2.0}},
        }))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MOA_LAB_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
        cmd = [sys.executable, "-m", "moa_lab.cli", "eval", str(tmp_path / "e.yaml"), "--no-mlflow"]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        runlog = tmp_path / "runs" / "two" / "latest" / "topology.jsonl"
        deadline = time.monotonic() + 60
        while not (runlog.exists() and len(runlog.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            second = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=120)
        finally:
            gate.set()
        out, err = first.communicate(timeout=120)
        bodies = [json.dumps(c.body, sort_keys=True) for c in server.calls]
    assert first.returncode == 0, out + err
    assert second.returncode != 0 and "is being written by pid" in second.stderr, second.stdout + second.stderr
    assert len(bodies) == 20 and len(set(bodies)) == 20  # every call paid once
    assert sorted(r.id for r in read_runlog(runlog).records) == sorted(q["id"] for q in queries)
