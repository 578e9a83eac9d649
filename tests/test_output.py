"""Output for logs: plain progress lines when stdout is not a terminal, and `moa-lab ui`'s process
group stopped on SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from moa_lab.cli._progress import RunProgress


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with RunProgress(Console(file=out, force_terminal=False, width=200), every_s=0) as progress:
        progress.start("vote-3", 3)
        for i in range(3):
            progress.advance("vote-3", f"quality {i / 3:.3f}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "vote-3: started, 3 samples"
    assert [line.split(" · ")[0] for line in lines[1:]] == ["vote-3: 1/3", "vote-3: 2/3", "vote-3: 3/3"]
    assert "\x1b" not in out.getvalue()


def test_progress_lines_are_periodic_and_the_last_one_always_shows() -> None:
    out = io.StringIO()
    with RunProgress(Console(file=out, force_terminal=False), every_s=3600) as progress:
        progress.start("single", 100)
        for _ in range(100):
            progress.advance("single", "quality 1.000")
    assert [line.split(" · ")[0] for line in out.getvalue().splitlines()] == ["single: started, 100 samples", "single: 100/100"]


CHILD = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(worker.pid))
time.sleep(120)
"""


def test_ui_process_group_is_stopped_on_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "worker.pid"
    script = tmp_path / "server.py"
    script.write_text(CHILD)
    runner = f"from moa_lab.cli._ui import run_group; import sys; sys.exit(run_group([sys.executable, {str(script)!r}, {str(pidfile)!r}]))"
    proc = subprocess.Popen([sys.executable, "-c", runner], env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone for our purpose
        return fh.read().split()[2] != "Z"
