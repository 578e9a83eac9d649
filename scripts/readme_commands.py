"""Run every command of README.md and docs/guide.md in a fresh clone, as a new user would, and write
each one's status and time to docs/readme-commands.md.

    python scripts/readme_commands.py [--clone DIR] [--mirror URL] [--models DIR] [--only TEXT] [--out FILE]

The clone is a `git clone` of this repository's HEAD into a new folder with no `../shared` beside
it. Recorded data comes the documented way, `moa-lab data pull`, from `$MOA_LAB_DATA_MIRROR`: a
mirror of the public sources built from ../shared/data and served on a free port (or `--mirror`).
The embedded model is assembled into a fresh cache (`--models` links an assembled one instead).

Commands are the lines of every `bash` block (continuations joined, comments dropped) and every
`python` block (one command each; a document's python blocks share one interpreter, as a reader's
session would). Skipped, with the reason: package installs (the clone runs on this environment's
install, through PYTHONPATH), the test suite, and commands that need an API key. Servers (`moa-lab
serve`, `moa-lab ui`, `mlflow server`, `optuna-dashboard`) run in the background on a free port
(later commands naming the documented port are pointed at it) until the next server or the end of
their document, then get SIGTERM: they pass when they came up and left nothing running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/guide.md")
SKIP = (
    (re.compile(r"^pytest\b|&& pytest\b"), "the test suite: run it separately (`pytest`, `pytest --slow`)"),
    (re.compile(r"^pip install"), "installs packages: the clone runs on this environment's install (PYTHONPATH)"),
    (re.compile(r"together/|TOGETHER_API_KEY|OPENAI_API_KEY|experiments/paper/|^export "), "needs an API key"),
)
SERVICES = {"moa-lab serve": 8000, "moa-lab ui": 5000, "mlflow server": 5000, "optuna-dashboard": 8080}
"""Commands that serve until stopped, and the port each listens on by default."""


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    lang: str
    text: str


@dataclass
class Result:
    command: Command
    status: str
    seconds: float = 0.0
    note: str = ""


def extract(doc: str, root: Path = ROOT) -> list[Command]:
    """The commands of `doc`'s bash and python blocks, in order."""
    text = (root / doc).read_text()
    out = []
    for match in re.finditer(r"^```(bash|sh|python)\n(.*?)^```", text, re.S | re.M):
        lang, body = match.group(1), match.group(2)
        first = text.count("\n", 0, match.start()) + 2
        if lang == "python":
            out.append(Command(doc, first, "python", body.rstrip()))
            continue
        joined, start = "", first
        for n, raw in enumerate(body.splitlines(), first):
            line = _strip_comment(raw).rstrip()
            if not joined:
                start = n
            if line.endswith("\\"):
                joined += line[:-1].rstrip() + " "
                continue
            joined = (joined + line.strip()).strip()
            if joined:
                out.append(Command(doc, start, "bash", joined))
            joined = ""
    return out


def _strip_comment(line: str) -> str:
    """The line without a shell comment (a `#` at the start or after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


class Service:
    """A documented server, started on a free port and stopped with SIGTERM."""

    def __init__(self, text: str, documented_port: int, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.documented = documented_port
        self.port = _free_port()
        self.text = re.sub(r"--port \d+", f"--port {self.port}", text) if "--port" in text else f"{text} --port {self.port}"
        self.log = log
        with log.open("w") as fh:
            self.proc = subprocess.Popen(f"exec {self.text}", shell=True, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True, executable="/bin/bash")

    def wait_up(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if _listening(self.port):
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> str:
        """moa-lab's servers get SIGTERM on their own process (they promise to stop their children);
        others get Ctrl-C's SIGINT on their whole process group. '' when everything is gone; what
        is left gets SIGKILL."""
        if self.proc.poll() is None:
            if self.text.startswith("moa-lab "):
                self.proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(self.proc.pid, signal.SIGINT)
        left = []
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            left.append("still running 60 s after the signal")
        time.sleep(2)
        if _listening(self.port):
            left.append(f"port {self.port} still listening")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 0)  # a process of this session is still alive
            left.append("processes of its session still running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        return "; ".join(left)


class PythonSession:
    """One interpreter for a document's python blocks: each block is executed in the same namespace."""

    RUNNER = (
        "import contextlib, io, json, sys, traceback\n"
        "ns = {'__name__': '__main__'}\n"
        "for line in sys.stdin:\n"
        "    out = io.StringIO(); ok = True\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "        try: exec(compile(json.loads(line), 'block', 'exec'), ns)\n"
        "        except BaseException: ok = False; traceback.print_exc()\n"
        "    print(json.dumps({'ok': ok, 'output': out.getvalue()}), flush=True)\n"
    )

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.RUNNER], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, code: str) -> tuple[bool, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(code) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            return False, "the interpreter exited"
        done = json.loads(reply)
        return done["ok"], done["output"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=120)


class Runner:
    """Runs commands in the clone, in document order, keeping servers and python sessions alive
    between them."""

    def __init__(self, clone: Path, env: dict[str, str], logs: Path, timeout: float) -> None:
        self.clone, self.env, self.logs, self.timeout = clone, env, logs, timeout
        self.service: tuple[Service, Result, float] | None = None
        self.python: PythonSession | None = None
        self.results: list[Result] = []

    def run(self, cmd: Command) -> Result:
        text, note = cmd.text, ""
        if cmd.lang == "bash" and text.startswith("pip install -e . && "):
            text, note = text.removeprefix("pip install -e . && "), "`pip install -e .` not run (PYTHONPATH is the clone)"
        if cmd.lang == "bash" and text.startswith("pip install ") and " && " in text:
            text, note = text.split(" && ", 1)[1], f"`{text.split(' && ', 1)[0]}` not run: installs packages"
        if note and shutil.which(text.split()[0]) is None:
            return self._done(Result(cmd, "skipped", note=f"{note}, and `{text.split()[0]}` is not installed here"))
        for pattern, why in SKIP:
            if cmd.lang == "bash" and pattern.search(text):
                return self._done(Result(cmd, "skipped", note=why))
        if cmd.lang == "python":
            return self._python(cmd)
        kind = next((k for k in SERVICES if text.startswith(k)), None)
        if kind is not None:
            return self._start_service(cmd, text, kind, note)
        if self.service is not None:  # a command that talks to the running server, on its real port
            service = self.service[0]
            text = re.sub(rf":{service.documented}\b", f":{service.port}", text)
        return self._shell(cmd, text, note)

    def _shell(self, cmd: Command, text: str, note: str) -> Result:
        start = time.perf_counter()
        log = self._log(cmd)
        proc = subprocess.Popen(text, shell=True, cwd=self.clone, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, executable="/bin/bash", start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the command and everything it started
            stdout, stderr = proc.communicate()
            log.write_text(f"$ {text}\n{stdout}\n--- stderr ---\n{stderr}")
            return self._done(Result(cmd, f"FAILED (timeout {self.timeout:.0f} s)", self.timeout, note))
        done = subprocess.CompletedProcess(text, proc.returncode, stdout, stderr)
        log.write_text(f"$ {text}\n{done.stdout}\n--- stderr ---\n{done.stderr}")
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        if done.returncode == 0 and text.startswith("curl ") and '"choices"' not in done.stdout:
            status = "FAILED (no completion in the reply)"
        if done.returncode != 0:
            note = (note + "; " if note else "") + _last_line(done.stderr or done.stdout)
        return self._done(Result(cmd, status, time.perf_counter() - start, note))

    def _python(self, cmd: Command) -> Result:
        if self.python is None:
            self.python = PythonSession(self.clone, self.env)
        start = time.perf_counter()
        ok, output = self.python.run(cmd.text)
        self._log(cmd).write_text(f"{cmd.text}\n--- output ---\n{output}")
        return self._done(Result(cmd, "ok" if ok else "FAILED (exception)", time.perf_counter() - start,
                                 "" if ok else _last_line(output)))

    def _start_service(self, cmd: Command, text: str, kind: str, note: str) -> Result:
        self.stop_service()
        match = re.search(r"--port (\d+)", text)
        documented = int(match.group(1)) if match else SERVICES[kind]
        if kind == "mlflow server" and "postgresql" in text:
            text, db_note = _fresh_database(text)
            if text is None:
                return self._done(Result(cmd, "skipped", note=db_note))
            note = (note + "; " if note else "") + db_note
        start = time.perf_counter()
        service = Service(text, documented, self.clone, self.env, self._log(cmd))
        up = service.wait_up(600)
        result = Result(cmd, "ok" if up else "FAILED (never listened)", time.perf_counter() - start,
                        (note + "; " if note else "") + f"port {service.port} for {documented}")
        if not up:
            result.note += "; " + _last_line(service.log.read_text())
            service.stop()
            return self._done(result)
        self.service = (service, result, start)
        return self._done(result)

    def stop_service(self) -> None:
        """Stop the running server; its row says whether SIGTERM left anything behind."""
        if self.service is None:
            return
        service, result, _ = self.service
        self.service = None
        left = service.stop()
        signal_name = "SIGTERM" if service.text.startswith("moa-lab ") else "SIGINT (Ctrl-C)"
        result.note += f"; {signal_name}: " + (left or "stopped, nothing left running")
        if left and service.text.startswith("moa-lab "):  # the docs promise a clean stop for moa-lab's own servers only
            result.status = f"FAILED (after {signal_name})"
        elif left:
            result.note += ", so it was killed (SIGKILL)"
        print(f"{result.status:<28} stopped   {result.command.doc}:{result.command.line}  {result.note}", flush=True)
        _drop_database(service.text)

    def end_document(self) -> None:
        self.stop_service()
        if self.python is not None:
            self.python.close()
            self.python = None

    def _done(self, result: Result) -> Result:
        self.results.append(result)
        c = result.command
        print(f"{result.status:<28} {result.seconds:>7.1f}s  {c.doc}:{c.line}  {c.text.splitlines()[0][:110]}", flush=True)
        if result.status.startswith("FAILED"):
            print(f"    {result.note}", flush=True)
        return result

    def _log(self, cmd: Command) -> Path:
        return self.logs / f"{len(self.results) + 1:02d}-{Path(cmd.doc).stem}-{cmd.line}.txt"


def _fresh_database(text: str) -> tuple[str | None, str]:
    """The mlflow server command on a new PostgreSQL database (created here, dropped after)."""
    match = re.search(r"(postgresql\+psycopg2://[^/\s]+)/(\w+)", text)
    if match is None:
        return None, "needs a PostgreSQL database"
    name = f"readme_mlflow_{os.getpid()}"
    try:
        _admin(match.group(1), f"DROP DATABASE IF EXISTS {name}")
        _admin(match.group(1), f"CREATE DATABASE {name}")
    except Exception as exc:  # noqa: BLE001 - no server, no driver: say so and skip
        return None, f"needs PostgreSQL at {match.group(1)} ({type(exc).__name__})"
    return text.replace(match.group(0), f"{match.group(1)}/{name}"), f"database {name} (made for this run) instead of {match.group(2)}"


def _drop_database(text: str) -> None:
    match = re.search(r"(postgresql\+psycopg2://[^/\s]+)/(readme_mlflow_\d+)", text)
    if match is not None:
        with contextlib.suppress(Exception):
            _admin(match.group(1), f"DROP DATABASE IF EXISTS {match.group(2)} WITH (FORCE)")


def _admin(url: str, sql: str) -> None:
    import psycopg2

    user, _, hostport = url.removeprefix("postgresql+psycopg2://").rpartition("@")
    host, _, port = hostport.partition(":")
    conn = psycopg2.connect(dbname="postgres", host=host, port=int(port or 5432), user=user or None, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:300]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _serve_mirror(data: Path, folder: Path) -> str:
    """Build a mirror of the public sources from `data` and serve it on a thread; its base URL."""
    import functools
    import http.server

    sys.path.insert(0, str(ROOT))
    from moa_lab.testing._mirror import build_mirror

    build_mirror(data, folder)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # the pull prints what it fetches
            return None

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def write_table(results: list[Result], out: Path, *, commit: str, seconds: float, how: str, load: str) -> None:
    counts = {k: sum(r.status.startswith(k) for r in results) for k in ("ok", "FAILED", "skipped")}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [
        "# README and guide commands on a fresh clone",
        "",
        f"Generated by `python scripts/readme_commands.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}, commit `{commit}`, "
        f"on {os.cpu_count()} cores ({cpu}), shared with other work while it ran (load average {load}), so the times "
        "are upper bounds.",
        "",
        how,
        "",
        f"**{counts['ok']} ok, {counts['FAILED']} failed, {counts['skipped']} skipped; {seconds / 60:.1f} min in all.**",
        "",
        "| # | where | command | status | time s | note |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(results, 1):
        c = r.command
        shown = c.text if c.lang == "bash" else f"(python block) {c.text.splitlines()[0]} …"
        cell = shown.replace("|", "\\|")
        lines.append(f"| {n} | {c.doc}:{c.line} | `{cell}` | {r.status} | {r.seconds:.1f} | {r.note.replace('|', '/')} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, default=None, help="a new folder for the clone (default: a temporary one)")
    parser.add_argument("--mirror", default=None, help="base URL of a data mirror (default: one built from ../shared/data)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="what the mirror is built from")
    parser.add_argument("--models", type=Path, default=None, help="an assembled models/ folder to link into the fresh cache")
    parser.add_argument("--only", default=None, help="run only commands matching this regex (the table is not written)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "readme-commands.md")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds a command may take (a loaded machine is slow)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moa-readme-"))
    clone = args.clone or work / "moa-lab"
    if clone.exists():
        sys.exit(f"{clone} exists: give a new folder")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cache, logs = work / "cache", work / "logs"
    cache.mkdir()
    logs.mkdir()
    if args.models is not None:
        (cache / "models").symlink_to(args.models.resolve())
    mirror = args.mirror or _serve_mirror(args.data, work / "mirror")
    env = {**os.environ, "PYTHONPATH": str(clone), "MOA_LAB_CACHE_DIR": str(cache), "MOA_LAB_DATA_MIRROR": mirror, "COLUMNS": "160"}
    for name in ("MOA_LAB_DATA", "OPENAI_API_KEY", "TOGETHER_API_KEY"):
        env.pop(name, None)
    where = subprocess.run([sys.executable, "-c", "import moa_lab; print(moa_lab.__file__)"], cwd=clone, env=env,
                           capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(clone)):
        sys.exit(f"moa_lab imports from {where}, not the clone: check PYTHONPATH and the editable install")
    print(f"clone {clone} ({commit}), cache {cache}, data mirror {mirror}, logs {logs}", flush=True)
    runner = Runner(clone, env, logs, args.timeout)
    total, load_start = time.perf_counter(), os.getloadavg()[1]
    for doc in DOCS:
        for cmd in extract(doc, clone):
            if args.only is None or re.search(args.only, cmd.text):
                runner.run(cmd)
        runner.end_document()
    seconds = time.perf_counter() - total
    failed = sum(r.status.startswith("FAILED") for r in runner.results)
    print(f"{failed} failed; {seconds:.0f} s in all; logs in {logs}", flush=True)
    if args.only is None:
        how = (f"A `git clone` of the repository into an empty folder (no `../shared` beside it); a fresh moa-lab cache "
               f"({'the embedded model linked from an assembled one' if args.models else 'the embedded model assembled in it'}); "
               "the recorded data fetched by the documented `moa-lab data pull` from `$MOA_LAB_DATA_MIRROR`, a local mirror "
               "of the public sources built from ../shared/data (`scripts/data_mirror.py`), since this machine has no internet. "
               "Every line of the `bash` blocks and every `python` block of README.md and docs/guide.md, in order. Servers run "
               "on a free port (later commands are pointed at it) until the next server or the end of their document, then get "
               "SIGTERM.")
        load = f"{load_start:.1f} at the start, {os.getloadavg()[1]:.1f} at the end (5-minute means)"
        write_table(runner.results, args.out, commit=commit, seconds=seconds, how=how, load=load)
        print(f"wrote {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
