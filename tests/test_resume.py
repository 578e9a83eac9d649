"""Kill an evaluation halfway, resume it: the same RunLog as an uninterrupted run, nothing twice."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import lite_experiment, start_eval

from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import QueryRecord, read_runlog

N = 24


def _reply(body: dict) -> str:
    question = body["messages"][-1]["content"]
    return "Paris" if body["model"] != "p2" or "7" not in question else "Lyon"


def _experiment(folder: Path, base_url: str) -> Path:
    return lite_experiment(folder, base_url, "resume-test", samples=N, concurrency=3)


def _records(exp: Path) -> list[QueryRecord]:
    path = exp.parent / "out" / "resume-test" / "latest" / "lite.jsonl"
    return read_runlog(path).records if path.exists() else []


def _wait_for_records(exp: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(_records(exp)) >= n:
                return
        except Exception:  # noqa: BLE001 - the file may be mid-write
            pass
        time.sleep(0.05)
    raise AssertionError("the evaluation did not progress")


def _comparable(records: list[QueryRecord]) -> dict[str, tuple]:
    return {r.id: (r.answer, r.score, r.layers, r.proposal_scores) for r in records}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["interrupt", "kill"])
def test_killed_evaluation_resumes_to_the_same_runlog(tmp_path: Path, sig: signal.Signals) -> None:
    with OpenAITestServer(latency=0.15, responder=_reply) as srv:
        reference_dir = tmp_path / "reference"
        reference_dir.mkdir()
        ref = start_eval(_experiment(reference_dir, srv.base_url))
        assert ref.wait(120) == 0, ref.stderr.read()  # type: ignore[union-attr]
        reference = _comparable(_records(reference_dir / "exp.yaml"))
        assert len(reference) == N
        srv.reset()

        run_dir = tmp_path / "run"
        run_dir.mkdir()
        exp = _experiment(run_dir, srv.base_url)
        first = start_eval(exp)
        _wait_for_records(exp, N // 3)
        first.send_signal(sig)
        first.wait(60)
        assert first.returncode != 0
        partial = _records(exp)
        assert N // 3 <= len(partial) < N

        second = start_eval(exp, "--resume")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert f"{len(partial)} samples kept" in out

        final = _records(exp)
        ids = Counter(r.id for r in final)
        assert len(ids) == N and max(ids.values()) == 1  # no sample scored twice
        assert _comparable(final) == reference
        bodies = Counter((c.model, json.dumps(c.body["messages"])) for c in srv.calls)
        repeated = sum(n - 1 for n in bodies.values() if n > 1)
        if sig == signal.SIGINT:
            assert repeated == 0  # a graceful stop finishes its calls: none is paid twice
        else:
            assert repeated <= 3 * 4  # SIGKILL: at most the calls in flight at the kill are sent again
