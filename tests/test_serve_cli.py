"""`moa-lab serve` as a process: the bearer key, a trace per request in MLflow, the served RunLog,
and SIGTERM finishing the request in flight before the server stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from moa_lab.evaluation import FINISHED
from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import read_runlog

KEY = "sk-served-key-for-the-test-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base_url: str, proc: subprocess.Popen[str], key: str | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {key}"} if key else {})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"moa-lab serve exited {proc.returncode}: {proc.communicate()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError("moa-lab serve did not start")


@pytest.mark.slow
def test_serve_command_key_trace_and_sigterm(tmp_path: Path) -> None:
    with OpenAITestServer(latency=1.5) as backend:
        experiment = {
            "name": "served-test",
            "topology": {"preset": "moa", "proposers": ["srv/a", "srv/b"], "layers": 2, "aggregator": "srv/agg",
                         "max_tokens": 16},
            "endpoints": {"srv": {"kind": "openai", "base_url": backend.base_url}},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "served"},
            "cache": "memory",
        }
        path = tmp_path / "served.yaml"
        path.write_text(yaml.safe_dump(experiment))
        port = free_port()
        env = {**os.environ, "SERVE_TEST_KEY": KEY, "MOA_LAB_CACHE_DIR": str(tmp_path / "cache")}
        cmd = [sys.executable, "-m", "moa_lab.cli", "serve", str(path), "--port", str(port), "--api-key-env", "SERVE_TEST_KEY",
               "--output", str(tmp_path / "runs")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_ready(base_url, proc, KEY)
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
            reply: dict[str, Any] = {}

            def ask() -> None:
                client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
                reply["r"] = client.chat.completions.create(model="served-test", messages=[{"role": "user", "content": "In flight?"}])

            asker = threading.Thread(target=ask)
            asker.start()
            while not backend.calls:  # the request is in flight: its proposers are being answered
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            asker.join(30)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert reply["r"].choices[0].message.content.startswith("agg says ")
    assert proc.returncode in (0, -signal.SIGTERM), out
    folder = next((tmp_path / "runs" / "served-test").glob("2*"))
    assert (folder / FINISHED).exists()
    records = read_runlog(folder / "served.jsonl").records
    assert [r.answer.text for r in records] == [reply["r"].choices[0].message.content]
    assert KEY not in out and KEY not in (folder / "served.jsonl").read_text()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = mlflow.get_experiment_by_name("served").experiment_id
    traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert len(traces) == 1 and len(traces[0].data.spans) == 1 + len(records[0].calls)
    assert KEY not in json.dumps(traces[0].to_dict())
