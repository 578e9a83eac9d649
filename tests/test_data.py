"""`moa-lab data pull` from a local HTTP mirror of the public sources, the data search order, and
commands that stop on a missing dataset before making anything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moa_lab.benchmarks import DataMissing, datasets, find_data, load_gsm8k, load_mt_bench, pull
from moa_lab.benchmarks._formats import file_sha256
from moa_lab.core import ConfigError
from moa_lab.testing._mirror import build_mirror, serve_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = ROOT.parent / "shared" / "data"
    if not data.is_dir():
        pytest.skip(f"recorded data not found at {data} (the mirror is built from it)")
    return build_mirror(data, tmp_path_factory.mktemp("mirror"))


def test_pull_fetches_converts_and_checks_every_published_file(mirror: Path, tmp_path: Path) -> None:
    with serve_folder(mirror) as url:
        for name in ("gsm8k", "mt_bench"):
            done = pull(name, dest=tmp_path, mirror=url)
            published = [f for f in datasets()[name].files if f.source is not None]
            assert sorted(done.fetched) == sorted(f.path for f in published)
            for f in published:
                assert file_sha256(tmp_path / name / f.path) == f.sha256
        again = pull("gsm8k", dest=tmp_path, mirror=url)
    assert again.fetched == () and len(again.present) == 20
    samples = load_gsm8k(tmp_path / "gsm8k")
    assert len(samples) == 1319 and samples[0].target == "18"
    assert len(load_mt_bench(tmp_path / "mt_bench" / "question.jsonl")) == 80


def test_a_tampered_source_fails_its_checksum_and_writes_nothing(mirror: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(mirror / "lm-sys", bad / "lm-sys")
    question = bad / "lm-sys/FastChat/main/fastchat/llm_judge/data/mt_bench/question.jsonl"
    question.write_text(question.read_text().replace("Compose", "Write", 1))
    with serve_folder(bad) as url, pytest.raises(ConfigError, match="checksum mismatch"):
        pull("mt_bench", dest=tmp_path / "out", mirror=url)
    assert not (tmp_path / "out" / "mt_bench" / "question.jsonl").exists()


def test_search_order_and_the_missing_dataset_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (tmp_path / "shared" / "data" / "gsm8k").mkdir(parents=True)
    (tmp_path / "env" / "gsm8k").mkdir(parents=True)
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MOA_LAB_DATA", raising=False)
    assert find_data("data:gsm8k", project) == tmp_path / "shared" / "data" / "gsm8k"
    (tmp_path / "cache" / "data" / "gsm8k").mkdir(parents=True)
    assert find_data("data:gsm8k", project) == tmp_path / "cache" / "data" / "gsm8k"
    monkeypatch.setenv("MOA_LAB_DATA", str(tmp_path / "env"))
    assert find_data("data:gsm8k", project) == tmp_path / "env" / "gsm8k"
    with pytest.raises(DataMissing, match=r"moa-lab data pull alpaca_eval"):
        find_data("data:alpaca_eval/model_outputs/x.json.gz", project)
    with pytest.raises(DataMissing, match="no dataset is called 'nope'"):
        find_data("data:nope/x", project)


@pytest.mark.parametrize("command", ["eval", "search"])
def test_a_missing_dataset_stops_the_command_before_any_store_or_folder(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moa_lab.cli import app

    project = tmp_path / "project"
    (project / "experiments").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    name = "search_gsm8k_replay.yaml" if command == "search" else "gsm8k_replay.yaml"
    shutil.copy(ROOT / "experiments" / name, project / "experiments" / name)
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MOA_LAB_DATA", raising=False)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, [command, f"experiments/{name}"])
    assert isinstance(result.exception, DataMissing) and "moa-lab data pull gsm8k" in str(result.exception)
    assert sorted(p.name for p in project.iterdir()) == ["experiments", "pyproject.toml"]
    assert sorted(p.name for p in (project / "experiments").iterdir()) == [name]


def test_the_shipped_manifest_matches_the_shared_data() -> None:
    if not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("../shared/data not found: the manifest's checksums are made from it")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "data_manifest.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
