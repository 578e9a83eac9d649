"""Search workers on one budget ledger: PostgreSQL shared by three processes, and a journal
study with its sqlite ledger; a killed worker's hold never blocks the others or the resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import fresh_postgres, postgres_url

from moa_lab.evaluation import Experiment
from moa_lab.models import LedgerBudget
from moa_lab.search import study_dir
from moa_lab.search._trial import trial_records
from moa_lab.testing import OpenAITestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres("test_moa_budget") as name:
        yield postgres_url(name)


def _experiment(folder: Path, base_url: str, budget: float, trials: int) -> Path:
    data = folder / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(6)))
    body = {
        "name": "ledger", "output": str(folder / "out"), "benchmark": {"kind": "jsonl", "path": str(data)},
        "scorer": "exact", "tracking": {"mlflow": False}, "concurrency": 2,
        "endpoints": {"srv": {"kind": "openai", "base_url": base_url, "concurrency": 4}},
        "prices": {m: {"input": 100.0, "output": 100.0} for m in "abcd"},
        "search": {"trials": trials, "budget_usd": budget,
                   "space": {"pool": ["srv/a", "srv/b", "srv/c", "srv/d"], "proposers": [1, 3], "aggregators": ["vote"],
                             "max_tokens": [16]}},
    }
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _worker(exp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MOA_LAB_CACHE_DIR": str(exp.parent / "cache")}
    return subprocess.Popen([sys.executable, "-m", "moa_lab.cli", "--debug", "search", str(exp), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(worker: subprocess.Popen[str], timeout: float = 180, *, failed_trials: bool | None = False) -> None:
    """Wait for a worker; it exits 3 when the study holds failed trials (None: either may be right)."""
    out, err = worker.communicate(timeout=timeout)
    expected = {0, 3} if failed_trials is None else {3 if failed_trials else 0}
    assert worker.returncode in expected, err[-2000:]


def _spend(exp: Path, number: int) -> float:
    return sum(r.cost.paid_usd for r in trial_records(study_dir(Experiment.load(exp)), number))


def test_three_workers_on_one_ledger_leave_no_failed_trial_with_spend(database: str, tmp_path: Path) -> None:
    import optuna

    with OpenAITestServer(latency=0.05, responder=lambda body: "yes") as srv:
        exp = _experiment(tmp_path, srv.base_url, budget=0.03, trials=40)  # the cap stops the study early
        _finish(_worker(exp, "--storage", database, "--trials", "0"))
        workers = [_worker(exp, "--storage", database, "--resume") for _ in range(3)]
        for w in workers:
            _finish(w, failed_trials=None)
    trials = optuna.load_study(study_name="ledger", storage=database).get_trials()
    failed = [t for t in trials if t.state.name == "FAIL"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete and failed and len(complete) < 40  # the cap stopped the study early
    assert all(_spend(exp, t.number) == 0 for t in failed), [(t.number, _spend(exp, t.number)) for t in failed]
    ledger = LedgerBudget(database, "study:ledger", 0.03)
    try:
        assert ledger.reserved_usd == pytest.approx(0, abs=1e-12) and ledger.spent_usd <= 0.03
        assert ledger.spent_usd == pytest.approx(sum(_spend(exp, t.number) for t in trials))
    finally:
        ledger.close()


def test_a_killed_journal_worker_is_resumed_in_bounded_time(tmp_path: Path) -> None:
    import optuna

    with OpenAITestServer(latency=0.3, responder=lambda body: "yes") as srv:
        exp = _experiment(tmp_path, srv.base_url, budget=50.0, trials=6)
        worker = _worker(exp)
        ledger_path = study_dir(Experiment.load(exp)) / "budget.sqlite"
        deadline = time.time() + 60
        while time.time() < deadline and not (ledger_path.exists() and _held(ledger_path) > 0):
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # mid-trial: its stage's hold stays in the ledger
        worker.wait(30)
        assert _held(ledger_path) > 0
        started = time.monotonic()
        _finish(_worker(exp, "--resume"), timeout=120, failed_trials=True)  # the killed worker's trial is failed
        took = time.monotonic() - started
    study = optuna.load_study(study_name="ledger", storage=optuna.storages.journal.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_dir(Experiment.load(exp)) / "journal.log"))))
    # the killed worker's trial stays RUNNING on a journal (failing it on resume is not the budget's part)
    assert len([t for t in study.get_trials() if t.state.name == "COMPLETE"]) >= 5
    assert _held(ledger_path) == pytest.approx(0, abs=1e-12)
    print(f"resumed journal study finished in {took:.1f} s")


def _held(path: Path) -> float:
    """The ledger's reserved amount, read without joining it (a new worker would reclaim dead holds)."""
    with sqlite3.connect(path, timeout=30) as db:
        try:
            row = db.execute("SELECT reserved_usd FROM moa_ledger WHERE name = 'study:ledger'").fetchone()
        except sqlite3.OperationalError:  # the worker has created the file, not yet its tables
            return 0.0
    return float(row[0]) if row else 0.0
