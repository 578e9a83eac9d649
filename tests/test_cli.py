"""The command line: listing, and one-line errors with the fix and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def moa(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "moa_lab.cli", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_topologies_lists_presets_and_agents() -> None:
    done = moa("topologies")
    assert done.returncode == 0, done.stderr
    for name in ("self-moa", "moa-lite", "prompt-ensemble", "ranker", "synthesize", "vote", "plain", "first-k"):
        assert name in done.stdout


def test_topologies_show_prints_round_trippable_yaml(tmp_path: Path) -> None:
    done = moa("topologies", "--show", "moa-lite")
    assert done.returncode == 0 and "aggregator:" in done.stdout
    from moa_lab import load_topology, preset

    path = tmp_path / "t.yaml"
    path.write_text(done.stdout)
    assert load_topology(path) == preset("moa-lite")


def test_unknown_topology_says_did_you_mean() -> None:
    line = _one_line_error(moa("ask", "hi", "--topology", "self-moe"))
    assert "did you mean 'self-moa'" in line


def test_malformed_experiment_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntopology: [\n")
    line = _one_line_error(moa("run", str(bad)))
    assert "invalid YAML" in line and "line" in line


def test_invalid_experiment_field_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntopology: single\nqueries: [hi]\nbudget: {dollars: 3}\n")
    line = _one_line_error(moa("run", str(bad)))
    assert "budget.dollars: unknown field" in line


def test_missing_key_variable_names_it_and_never_prints_keys(tmp_path: Path) -> None:
    exp = tmp_path / "e.yaml"
    exp.write_text(
        "name: x\ntopology: {preset: single, model: together/some-model}\nqueries: [hi]\n"
        "endpoints: {together: {kind: openai, base_url: 'http://127.0.0.1:9/v1', api_key_env: MOA_TEST_KEY}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MOA_TEST_KEY"}
    done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "run", str(exp)], capture_output=True, text=True, env=env, timeout=60)
    assert "$MOA_TEST_KEY, which is not set" in _one_line_error(done)


def test_unreachable_endpoint_is_retried_then_recorded(tmp_path: Path) -> None:
    exp = tmp_path / "e.yaml"
    exp.write_text(
        "name: x\ntopology: {preset: single, model: dead/m}\nqueries: [hi]\noutput: out\n"
        "endpoints: {dead: {kind: openai, base_url: 'http://127.0.0.1:9/v1', retries: 2, backoff_s: 0.01, timeout_s: 2}}\n"
    )
    done = moa("run", str(exp), "--output", str(tmp_path / "runs"))
    assert done.returncode == 3, done.stderr  # the documented status of a run with failed samples
    assert "1 of 1 samples failed" in done.stdout
    from moa_lab.tracking import read_runlog

    [record] = read_runlog(tmp_path / "runs" / "x" / "latest" / "topology.jsonl").records
    assert record.answer is None and record.error is not None and "cannot connect" in record.error
    assert record.calls[0].attempts == 2


def test_debug_shows_the_traceback() -> None:
    done = moa("--debug", "ask", "hi", "--topology", "self-moe")
    assert done.returncode != 0 and "Traceback" in done.stderr


@pytest.mark.parametrize("args", [("run", "no-such-file.yaml"), ("ask", "hi", "--arg", "k")])
def test_other_bad_input_is_one_line(args: tuple[str, ...]) -> None:
    _one_line_error(moa(*args))
