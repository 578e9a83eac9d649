"""`moa-lab ui`: the MLflow UI on the project's store, stopped with its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moa_lab.cli._app import app, console


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    tracking_uri: Annotated[Optional[str], typer.Option(help="Store to show (default: the project's mlruns/mlflow.db).")] = None,
) -> None:
    """Open the MLflow UI on the project's store; Ctrl-C or SIGTERM stops it and its workers."""
    from moa_lab.evaluation import project_root
    from moa_lab.tracking import default_artifact_location, default_tracking_uri

    root = project_root(Path.cwd())
    uri = tracking_uri or default_tracking_uri(root)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port)]
    if tracking_uri is None:
        cmd += ["--default-artifact-root", default_artifact_location(root)]
    console.print(f"MLflow UI on http://127.0.0.1:{port} for {uri} (Ctrl-C stops it)")
    raise typer.Exit(run_group(cmd))


def run_group(cmd: list[str], *, grace_s: float = 5.0) -> int:
    """Run `cmd` in its own process group and wait; SIGINT or SIGTERM to this process stops the
    whole group (a server and the workers it forked): SIGTERM, then SIGKILL to what is left after
    `grace_s`. Returns the command's exit code (0 when stopped)."""
    proc = subprocess.Popen(cmd, start_new_session=True)
    stopped: list[float] = []

    def stop(signum: int, frame: Any) -> None:
        stopped.append(time.monotonic())
        _signal_group(proc, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopped and time.monotonic() - stopped[0] > grace_s:
                    _signal_group(proc, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    if stopped:
        _signal_group(proc, signal.SIGKILL)  # workers the server left behind in its group
        return 0
    return code


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
