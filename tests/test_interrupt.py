"""Ctrl-C during an embedded-model eval, then --resume: every sample ends scored, none failed.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group; the test does the same to
a `moa-lab eval` started in a group of its own. The embedded server runs in its own session, so it
keeps serving the queries in flight, which finish and are written; moa-lab then stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moa_lab.tracking import read_runlog

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = """\
name: interrupt
benchmark: {kind: builtin, tasks: [addition], items: 24}
topologies:
  self-moa: {preset: self-moa, k: 3, temperature: 0.8, aggregator: vote, max_tokens: 8}
scorer: auto
concurrency: 4
output: runs
"""


def test_ctrl_c_then_resume_scores_every_sample(tmp_path: Path, cache_dir: Path) -> None:
    # Must show 6
    (tmp_path / "e.yaml").write_text(EXPERIMENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOA_LAB_CACHE_DIR": str(cache_dir), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "moa_lab.cli", "eval", str(tmp_path / "e.yaml"), "--no-mlflow"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    runlog = tmp_path / "runs" / "interrupt" / "latest" / "self-moa__addition.jsonl"
    deadline = time.monotonic() + 300
    while not (runlog.exists() and len(runlog.read_text().splitlines()) >= 3):  # header + 2 records: queries in flight
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, out + err
    interrupted = read_runlog(runlog).records
    assert 2 <= len(interrupted) < 24
    assert [r.error for r in interrupted if r.error] == []  # the queries in flight finished: none failed

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = read_runlog(runlog).records
    assert sorted(r.id for r in records) == sorted({r.id for r in records}) and len(records) == 24
    assert [r.error for r in records if r.error] == []
    assert all(r.score is not None for r in records)
