"""A journal-storage study (no heartbeats) fails the trials of a worker that is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna

from moa_lab.search._study import fail_orphaned_trials


def test_running_trials_of_a_dead_worker_are_failed_and_a_live_ones_kept(tmp_path: Path) -> None:
    backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
    study = optuna.create_study(study_name="s", storage=optuna.storages.journal.JournalStorage(backend))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a worker that was killed: its pid is no process now
    dead, alive = study.ask(), study.ask()
    dead.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert fail_orphaned_trials(study) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {dead.number: optuna.trial.TrialState.FAIL, alive.number: optuna.trial.TrialState.RUNNING}
