"""Three worker processes on one study in the local PostgreSQL; one is killed mid-trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import fresh_postgres, postgres_url

from moa_lab.testing import OpenAITestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres("test_moa_search") as name:
        yield postgres_url(name)


def _experiment(folder: Path, base_url: str) -> Path:
    data = folder / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(6)))
    body = {
        "name": "workers", "output": str(folder / "out"), "benchmark": {"kind": "jsonl", "path": str(data)},
        "scorer": "exact", "tracking": {"mlflow": False}, "concurrency": 2,
        "endpoints": {"srv": {"kind": "openai", "base_url": base_url, "concurrency": 4}},
        "prices": {m: {"input": 1.0, "output": 1.0} for m in "abcde"},
        "search": {"trials": 12, "budget_usd": 100.0,
                   "space": {"pool": ["srv/a", "srv/b", "srv/c", "srv/d", "srv/e"], "proposers": [1, 3], "aggregators": ["vote"]}},
    }
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _worker(exp: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MOA_LAB_CACHE_DIR": str(exp.parent / "cache")}
    return subprocess.Popen([sys.executable, "-m", "moa_lab.cli", "search", str(exp), "--storage", url, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_three_workers_share_one_study_and_survive_a_kill(database: str, tmp_path: Path) -> None:
    import optuna

    with OpenAITestServer(latency=0.25, responder=lambda body: "yes" if body["model"] in ("a", "c") else "no") as srv:
        exp = _experiment(tmp_path, srv.base_url)
        creator = _worker(exp, database, "--trials", "0")
        assert creator.wait(120) == 0, creator.stderr.read()  # type: ignore[union-attr]
        workers = [_worker(exp, database, "--resume") for _ in range(3)]
        study = optuna.load_study(study_name="workers", storage=database)
        mine = f":{workers[0].pid}"
        deadline = time.time() + 60
        while time.time() < deadline and not any(
            t.state.name == "RUNNING" and str(t.user_attrs.get("worker", "")).endswith(mine) for t in study.get_trials()
        ):
            time.sleep(0.1)
        workers[0].send_signal(signal.SIGKILL)  # mid-trial: its trial stays RUNNING until its heartbeat goes stale
        for w in workers[1:]:
            try:
                out, err = w.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                w.kill()
                out, err = w.communicate()
                states = [(t.number, t.state.name, t.user_attrs.get("worker")) for t in study.get_trials()]
                raise AssertionError(f"worker hung; trials: {states}; stderr: {err[-1500:]}") from None
            assert w.returncode in (0, 3), err[-2000:]  # 3: the study holds the killed worker's failed trial
        trials = study.get_trials()
        complete = [t for t in trials if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs]  # repeats are not counted
        assert len(complete) == 12, [(t.number, t.state.name, t.user_attrs.get("worker"), t.user_attrs.get("surplus")) for t in trials]
        assert len({t.number for t in trials}) == len(trials)  # none duplicated
        assert all("spec" in t.user_attrs and "quality" in t.user_attrs for t in complete)

        failed = [t for t in trials if t.state.name == "FAIL"]
        assert len(failed) == 1 and failed[0].user_attrs["worker"].endswith(mine)  # failed by the others' heartbeat check
        resumed = _worker(exp, database, "--resume", "--trials", "15")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 3, err[-2000:]  # it still holds the killed worker's failed trial
        trials = study.get_trials()
        assert len([t for t in trials if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs]) == 15
        assert not [t for t in trials if t.state.name == "RUNNING"]
        failed = [t for t in trials if t.state.name == "FAIL"]
        assert len(failed) == 1
    from moa_lab.models import LedgerBudget

    ledger = LedgerBudget(database, "study:workers", 100.0)
    try:  # the killed worker's hold was counted as spent: nothing stays reserved
        assert ledger.reserved_usd == pytest.approx(0, abs=1e-12) and 0 < ledger.spent_usd <= 100.0
    finally:
        ledger.close()
