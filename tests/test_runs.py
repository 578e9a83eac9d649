"""One run path: `run` and `eval` run the same loop over any sample source; every invocation is a new
run in the experiment's own project; `--resume` continues the latest unfinished one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moa_lab.evaluation import Experiment, project_root
from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import read_runlog


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAITestServer]:
    def reply(body: dict) -> str:
        question = body["messages"][-1]["content"]
        return "Paris" if "France" in question else "Rome"

    with OpenAITestServer(responder=reply) as srv:
        yield srv


def _experiment(folder: Path, base_url: str, *, tracking: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "exp.yaml"
    path.write_text(
        f"""name: inline
topology: {{preset: single, model: srv/m, max_tokens: 8}}
queries:
  - {{input: "Capital of France?", target: Paris}}
  - {{input: "Capital of Spain?", target: Madrid}}
  - {{input: "Capital of Italy?", target: Rome}}
endpoints: {{srv: {{kind: openai, base_url: "{base_url}"}}}}
cache: memory
{tracking}"""
    )
    return path


def _moa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "MOA_LAB_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "moa_lab.cli", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def test_run_scores_inline_queries_against_their_targets(tmp_path: Path, server: OpenAITestServer) -> None:
    exp = _experiment(tmp_path / "proj", server.base_url)
    done = _moa("run", str(exp), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0.667" in done.stdout  # Paris and Rome right, Madrid wrong
    [log] = (tmp_path / "proj" / "runs" / "inline" / "latest").glob("*.jsonl")
    records = read_runlog(log).records
    assert sorted(r.score for r in records) == [0.0, 1.0, 1.0]
    assert not (tmp_path / "proj" / "mlruns").exists()  # `run` tracks only when the file asks for it


def test_eval_runs_inline_queries_and_each_invocation_is_a_new_run(tmp_path: Path, server: OpenAITestServer) -> None:
    exp = _experiment(tmp_path / "proj", server.base_url, tracking="tracking: {mlflow: false}\n")
    for _ in range(2):
        done = _moa("eval", str(exp), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "0.667" in done.stdout
    runs = sorted(p for p in (tmp_path / "proj" / "runs" / "inline").iterdir() if not p.is_symlink())
    assert len(runs) == 2 and all((r / "FINISHED").exists() and (r / "topology.jsonl").exists() for r in runs)
    assert (tmp_path / "proj" / "runs" / "inline" / "latest").resolve() == runs[-1].resolve()
    nothing = _moa("eval", str(exp), "--resume", cwd=tmp_path)
    assert nothing.returncode != 0 and "no unfinished run" in nothing.stderr


def test_an_experiment_outside_any_project_writes_only_into_its_own_folder(tmp_path: Path, server: OpenAITestServer) -> None:
    stranger = tmp_path / "stranger"  # an unrelated folder that happens to hold an MLflow store
    (stranger / "mlruns").mkdir(parents=True)
    (stranger / "mlruns" / "keep").write_text("")
    scratch = stranger / "scratch" / "study"
    exp = _experiment(scratch, server.base_url, tracking="tracking: {mlflow: true}\n")
    before = _files(stranger)
    done = _moa("run", str(exp), cwd=stranger)
    assert done.returncode == 0, done.stderr
    new = {p for p in _files(stranger) - before if "cache" not in p.parts}
    assert new and all(p.parts[:2] == ("scratch", "study") for p in new), sorted(map(str, new))
    assert (scratch / "mlruns" / "mlflow.db").exists() and (scratch / "runs" / "inline" / "latest").exists()
    assert project_root(scratch) == scratch.resolve()


def test_the_project_is_the_nearest_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mlruns").mkdir()  # a stray store below the project does not move it
    path = tmp_path / "experiments" / "e.yaml"
    path.write_text("name: e\ntopology: {preset: single, model: local}\nqueries: [hi]\n")
    exp = Experiment.load(path)
    assert exp.project == tmp_path.resolve() and exp.output_dir() == tmp_path.resolve() / "runs"
