"""Run every command of README.md's shell blocks and of docs/guide.md's examples in a fresh clone,
as a new user would, and report each one's status and time.

    python scripts/readme_commands.py --clone /tmp/fresh --mirror http://127.0.0.1:8765 [--models DIR]

`--clone` is made with `git clone` of this repository (a folder without ../shared beside it); data
comes from `moa-lab data pull` (from `--mirror`, default the public sources). Commands that install
packages, need an API key or run the whole test suite are listed as skipped; `moa-lab ui` is started
and stopped with SIGTERM, and counts as passed when nothing is left listening.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"pip ": "installs packages", "pytest": "the test suite (run separately)", "export ": "needs an API key",
        "together/": "needs an API key", "--tracking-uri http": "needs a running MLflow server"}


def commands() -> list[str]:
    """The shell commands of README.md's bash blocks, in order (comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def run(cmd: str, cwd: Path, env: dict[str, str], mirror: str | None) -> tuple[str, float, str]:
    for marker, why in SKIP.items():
        if marker in cmd and not cmd.startswith("pip install -e . && moa-lab"):
            return f"skipped ({why})", 0.0, ""
    if cmd.startswith("pip install -e . && "):
        cmd = cmd.removeprefix("pip install -e . && ")  # installed already, editable, by PYTHONPATH
    if cmd.startswith("moa-lab data pull") and mirror:
        cmd += f" --mirror {mirror}"
    start = time.perf_counter()
    if cmd.startswith("moa-lab ui"):
        return _ui(cmd, cwd, env, start)
    done = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    status = "ok" if done.returncode == 0 else f"FAILED ({done.returncode})"
    return status, time.perf_counter() - start, (done.stdout + done.stderr)[-400:]


def _ui(cmd: str, cwd: Path, env: dict[str, str], start: float) -> tuple[str, float, str]:
    port = 5000 + os.getpid() % 1000
    proc = subprocess.Popen([*shlex.split(cmd), "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    up = _wait_port(port, 180)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(2)
    left = _listening(port)
    status = "ok" if up and not left else f"FAILED (up={up}, still listening after SIGTERM={left})"
    return status, time.perf_counter() - start, ""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _listening(port):
            return True
        time.sleep(1)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, required=True)
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--models", type=Path, default=None, help="an existing cache's models/ to link (skips assembling the embedded model)")
    args = parser.parse_args()
    if args.clone.exists():
        sys.exit(f"{args.clone} exists: give a new folder")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(args.clone)], check=True)
    cache = args.clone.parent / f"{args.clone.name}-cache"
    cache.mkdir(exist_ok=True)
    if args.models and not (cache / "models").exists():
        (cache / "models").symlink_to(args.models.resolve())
    env = {**os.environ, "PYTHONPATH": str(args.clone), "MOA_LAB_CACHE_DIR": str(cache), "COLUMNS": "160"}
    env.pop("MOA_LAB_DATA", None)
    total, failed = time.perf_counter(), 0
    print(f"{'status':<44} {'time s':>7}  command", flush=True)
    for cmd in commands():
        status, seconds, tail = run(cmd, args.clone, env, args.mirror)
        failed += status.startswith("FAILED")
        print(f"{status:<44} {seconds:>7.1f}  {cmd}", flush=True)
        if status.startswith("FAILED"):
            print("    " + tail.replace("\n", "\n    "), flush=True)
    print(f"{failed} failed; {time.perf_counter() - total:.0f} s in all", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
