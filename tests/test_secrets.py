"""Passwords inside URLs (the MLflow store, the Redis cache, an endpoint) reach no store, RunLog or output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fresh_postgres

from moa_lab.core import redact_uri
from moa_lab.testing import Fault, OpenAITestServer

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = 13
SECRETS = ("pg-s3cret-pw", "redis-s3cret-pw", "http-s3cret-pw")


@pytest.fixture
def pg_database() -> Iterator[str]:
    with fresh_postgres("test_moa_secrets") as name:
        yield name


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    db = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        db.ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is unreachable at 127.0.0.1:6379 ({exc})")
    # the local server has no password; redis-py's AUTH failure on such a server is ignored
    yield f"redis://:redis-s3cret-pw@127.0.0.1:6379/{REDIS_DB}"
    for key in db.scan_iter("moa-lab:call:*"):
        db.delete(key)


def _database_text(name: str) -> str:
    """Every row of every table of the MLflow store, as text."""
    import psycopg2

    conn = psycopg2.connect(dbname=name, host="127.0.0.1", port=5432, user="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            tables = [t for (t,) in cur.fetchall()]
            rows = []
            for table in tables:
                cur.execute(f'SELECT * FROM "{table}"')
                rows.extend(repr(row) for row in cur.fetchall())
    finally:
        conn.close()
    assert any("pg-s3cret" not in r and "tracking_uri" in r for r in rows), "the experiment's params were not logged"
    return "\n".join(rows)


@pytest.mark.slow  # an MLflow store on PostgreSQL: its migrations take 20-30 s here
def test_no_password_in_the_mlflow_store_the_runlogs_or_the_output(tmp_path: Path, pg_database: str, redis_url: str) -> None:
    # Must show 9
    def faults(body: dict, attempt: int) -> Fault | None:
        return Fault("status", status=503) if body["model"] == "down" else None

    with OpenAITestServer(faults=faults) as server:
        base_url = server.base_url.replace("http://", "http://user:http-s3cret-pw@")
        tracking_uri = f"postgresql+psycopg2://postgres:pg-s3cret-pw@127.0.0.1:5432/{pg_database}"
        (tmp_path / "e.yaml").write_text(json.dumps({
            "name": "secrets", "queries": ["why?", "how?"], "output": "runs", "cache": redis_url,
            "topology": {"preset": "moa-lite", "proposers": ["srv/m", "srv/down", "dead/m"], "aggregator": "srv/m"},
            "endpoints": {"srv": {"kind": "openai", "base_url": base_url, "retries": 1},
                          "dead": {"kind": "openai", "base_url": "http://user:http-s3cret-pw@127.0.0.1:9/v1", "retries": 1}},
            "prices": {"m": {"input": 1.0, "output": 2.0}, "down": {"input": 1.0, "output": 2.0}},
            "tracking": {"tracking_uri": tracking_uri, "experiment": "secrets"},
        }))
        (tmp_path / "project").mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MOA_LAB_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
        done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "eval", str(tmp_path / "e.yaml")], cwd=tmp_path / "project",
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert any(c.model == "down" for c in server.calls)  # the failing endpoint's error was recorded
    assert "MLflow: postgresql+psycopg2://postgres:***@" in done.stdout
    texts = {"output": done.stdout + done.stderr, "MLflow store": _database_text(pg_database)}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "e.yaml" and "cache" not in path.relative_to(tmp_path).parts:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    runlogs = [text for name, text in texts.items() if "runs" in name and name.endswith(".jsonl")]
    assert any("http://user:***@127.0.0.1:9/v1: cannot connect" in text for text in runlogs)  # the URL is there, redacted
    leaks = [(name, secret) for name, text in texts.items() for secret in SECRETS if secret in text]
    assert leaks == []


def test_redact_uri_hides_passwords_only() -> None:
    assert redact_uri("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_uri("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"  # an unencoded @ is hidden whole
    assert redact_uri("see http://u:pw@h/v1 and sqlite:///a.db") == "see http://u:***@h/v1 and sqlite:///a.db"
    assert redact_uri("https://h/v1?x=a:b@c") == "https://h/v1?x=a:b@c"
