"""Processes sharing a call cache pay once for a call: one claims it, the others wait for its answer;
a claim whose holder was killed is taken over."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from moa_lab import Message, ModelSet, Sampling
from moa_lab.core import Completion, Request, Usage
from moa_lab.models import Price, PriceTable, RedisCache, SqliteCache, call_key
from moa_lab.testing import OpenAITestServer
from moa_lab.testing._scripted import ScriptedClient

Q = (Message("user", "What is two plus two?"),)
REDIS = "redis://127.0.0.1:6379/0"


def _cache(where: str) -> Any:
    return RedisCache(REDIS, prefix=f"moa-lab-test-{Path(where).name}:") if where.startswith("redis:") else SqliteCache(Path(where))


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "calls.sqlite")
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable on 127.0.0.1:6379 ({exc})")
    return f"redis:{tmp_path.name}-{os.getpid()}"


def _models(client: ScriptedClient, cache: Any, tmp_path: Path) -> ModelSet:
    return ModelSet(clients={"fake": client}, prices=PriceTable({"m": Price(1.0, 2.0)}), cache=cache, cache_dir=tmp_path)


def _key() -> str:
    return call_key("fake/m", Request("m", Q, Sampling()), 0)


def _holder(where: str, key: str, claimed: Any, answer: Any, then: str) -> None:
    """Claim `key`, say so, and once told to: store an answer for it, or die holding the claim."""
    cache = _cache(where)
    assert cache.claim(key)
    claimed.set()
    answer.wait(120)
    if then == "answer":
        cache.put(key, Completion("four, from the other process", Usage(9, 5)))
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _start_holder(where: str, then: str) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    claimed, answer = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_holder, args=(where, _key(), claimed, answer, then))
    proc.start()
    assert claimed.wait(120), "the holder process never claimed the call"
    return proc, answer


async def test_a_call_another_process_is_making_is_waited_for_not_paid_again(where: str, tmp_path: Path) -> None:
    proc, answer = _start_holder(where, "answer")
    client = ScriptedClient(responder=lambda r: "four")
    model = _models(client, _cache(where), tmp_path).get("fake/m")
    call = asyncio.create_task(model.call(Q, Sampling()))
    await asyncio.sleep(0.2)  # the call has looked, found the claim, and waits
    assert not call.done() and not client.requests
    answer.set()
    record = await asyncio.wait_for(call, 120)
    proc.join(60)
    assert record.output == "four, from the other process" and record.cached and record.cost.paid_usd == 0
    assert not client.requests


async def test_a_claim_whose_holder_was_killed_is_taken_over(where: str, tmp_path: Path) -> None:
    proc, die = _start_holder(where, "die")
    die.set()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    client = ScriptedClient(responder=lambda r: "four")
    cache = _cache(where)
    record = await asyncio.wait_for(_models(client, cache, tmp_path).get("fake/m").call(Q, Sampling()), 120)
    assert record.output == "four" and not record.cached and len(client.requests) == 1
    assert cache.get(_key()) is not None and cache.claim(_key())  # answered, and the claim it took is gone


def test_a_failed_call_leaves_no_claim_behind(tmp_path: Path) -> None:
    from moa_lab.core import EndpointError

    client = ScriptedClient(fail=lambda request, attempt: EndpointError("HTTP 500", status=500, retryable=False))
    cache = SqliteCache(tmp_path / "calls.sqlite")
    record = asyncio.run(_models(client, cache, tmp_path).get("fake/m").call(Q, Sampling()))
    assert record.error and len(client.requests) == 1
    row = cache._connect().execute("SELECT COUNT(*) FROM claims").fetchone()
    assert row == (0,)


@pytest.mark.slow
def test_search_workers_on_one_cache_pay_once_for_each_call(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(8)))
    with OpenAITestServer(latency=0.2, responder=lambda body: "yes") as srv:
        body = {"name": "shared", "output": str(tmp_path / "out"), "benchmark": {"kind": "jsonl", "path": str(data)},
                "scorer": "exact", "tracking": {"mlflow": False}, "concurrency": 4,
                "endpoints": {"srv": {"kind": "openai", "base_url": srv.base_url, "concurrency": 8}},
                "prices": {m: {"input": 1.0, "output": 1.0} for m in "abc"},
                "search": {"trials": 8, "space": {"pool": ["srv/a", "srv/b", "srv/c"], "proposers": [2, 3],
                                                  "aggregators": ["vote"], "max_tokens": [16]}}}
        exp = tmp_path / "exp.yaml"
        exp.write_text(yaml.safe_dump(body))
        env = {**os.environ, "MOA_LAB_CACHE_DIR": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "search", str(exp), "--workers", "2"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        served = Counter(json.dumps(c.body, sort_keys=True) for c in srv.calls)
    assert served and max(served.values()) == 1, [b for b, n in served.items() if n > 1][:3]


def test_a_killed_process_not_yet_reaped_counts_as_gone() -> None:
    from moa_lab.core import process_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        assert process_alive(child.pid)
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, and left a zombie until reaped
        assert not process_alive(child.pid)
    finally:
        child.kill()
        child.wait()
