from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moa_lab.models import MemoryCache, ModelSet, PriceTable, Price
from moa_lab.testing._scripted import ScriptedClient

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run end-to-end tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="end-to-end test: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir() -> Path:
    """The recorded outputs in ../shared/data (tests that need them skip when it is absent)."""
    if not DATA.is_dir():
        pytest.skip(f"recorded data not found at {DATA} (the shared data folder is not on this machine)")
    return DATA


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh moa-lab cache folder (calls, embeddings) that shares the assembled embedded model
    file and the exported embedder when CI set MOA_LAB_CACHE_DIR, so end-to-end tests do not make
    them again."""
    shared = os.environ.get("MOA_LAB_CACHE_DIR")
    path = tmp_path_factory.mktemp("moa-cache")
    if shared and (Path(shared) / "models").is_dir():
        (path / "models").symlink_to(Path(shared) / "models")
    if shared:
        (Path(shared) / "embedders").mkdir(parents=True, exist_ok=True)
        (path / "embedders").symlink_to(Path(shared) / "embedders")
    return path


@pytest.fixture
def fake() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def prices() -> PriceTable:
    return PriceTable({"a": Price(1.0, 2.0), "b": Price(1.0, 2.0), "c": Price(1.0, 2.0), "agg": Price(3.0, 4.0)})


@pytest.fixture
def models(fake: ScriptedClient, prices: PriceTable, tmp_path: Path) -> ModelSet:
    return ModelSet(clients={"fake": fake}, cache=MemoryCache(), prices=prices, cache_dir=tmp_path)


def postgres_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the local PostgreSQL (trust auth; psycopg2 is the driver
    installed here, while SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3)."""
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"


@contextlib.contextmanager
def fresh_postgres(prefix: str) -> Iterator[str]:
    """A new, empty database on the local PostgreSQL for one test, dropped after it; yields its name.
    The name carries this process's id, so two test runs on one machine never share a database.
    Skips when the server is unreachable."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"{prefix}_{os.getpid()}"

    def admin(sql: str) -> None:
        conn = psycopg2.connect(dbname="test", host="127.0.0.1", port=5432, user="postgres", connect_timeout=3)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    try:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable at 127.0.0.1:5432 ({str(exc).strip()})")
    admin(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def lite_experiment(folder: Path, base_url: str, name: str, *, samples: int, concurrency: int, extra: str = "") -> Path:
    """An experiment file (and its JSONL of `samples` questions whose answer is Paris): MoA-Lite with
    proposers p1, p2, p3 and aggregator agg on the OpenAI-compatible server at `base_url`, cached in
    the folder, runs under `out/`, no MLflow; `extra` adds YAML lines (prices, a budget)."""
    rows = (json.dumps({"id": f"q{i}", "input": f"Question number {i}?", "target": "Paris"}) for i in range(samples))
    (folder / "questions.jsonl").write_text("".join(row + "\n" for row in rows))
    exp = folder / "exp.yaml"
    exp.write_text(
        f"""name: {name}
benchmark: {{kind: jsonl, path: questions.jsonl}}
topologies:
  lite: {{preset: moa-lite, proposers: [srv/p1, srv/p2, srv/p3], aggregator: srv/agg, max_tokens: 20}}
scorer: exact
endpoints: {{srv: {{kind: openai, base_url: "{base_url}", concurrency: 8}}}}
cache: calls.sqlite
concurrency: {concurrency}
output: out
tracking: {{mlflow: false}}
{extra}"""
    )
    return exp


def start_eval(exp: Path, *extra: str) -> subprocess.Popen[str]:
    """`moa-lab eval EXP` in its own process (its call cache beside the experiment)."""
    env = {**os.environ, "COLUMNS": "200", "MOA_LAB_CACHE_DIR": str(exp.parent / "cache")}
    return subprocess.Popen([sys.executable, "-m", "moa_lab.cli", "eval", str(exp), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
