from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from moa_lab.core import Completion, Message, Request, Sampling, Usage
from moa_lab.models import SqliteCache, call_key


def _writer(path: str, worker: int) -> None:
    cache = SqliteCache(Path(path))
    for i in range(200):
        cache.put(f"{worker}-{i}", Completion(f"text {worker} {i}", Usage(i, worker)))


def test_sqlite_cache_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    SqliteCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = SqliteCache(path)
    assert len(cache) == 600
    assert cache.get("2-199") == Completion("text 2 199", Usage(199, 2))


def test_key_covers_model_messages_sampling_and_sample_index() -> None:
    req = Request("m", (Message("user", "hi"),), Sampling(temperature=0.7))
    base = call_key("e/m", req, 0)
    assert base == call_key("e/m", Request("m", (Message("user", "hi"),), Sampling(temperature=0.7)), 0)
    assert base != call_key("e/m2", req, 0)
    assert base != call_key("e/m", req, 1)
    assert base != call_key("e/m", Request("m", (Message("user", "hi!"),), Sampling(temperature=0.7)), 0)
    assert base != call_key("e/m", Request("m", (Message("user", "hi"),), Sampling(temperature=0.8)), 0)
    assert base != call_key("e/m", Request("m", (), Sampling(temperature=0.7), prompt="hi"), 0)


def test_redis_cache_is_shared_between_clients() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable on 127.0.0.1:6379 ({exc})")
    from moa_lab.models import RedisCache

    prefix = f"moa-lab-test-{os.getpid()}:"
    writer, reader = RedisCache("redis://127.0.0.1:6379/0", prefix=prefix), RedisCache("redis://127.0.0.1:6379/0", prefix=prefix)
    assert reader.get("k") is None
    writer.put("k", Completion("hello", Usage(3, 1), latency_s=0.25))
    assert reader.get("k") == Completion("hello", Usage(3, 1), latency_s=0.25)
    redis.Redis(host="127.0.0.1").delete(prefix + "k")


def test_remembered_answers_are_bounded_and_the_oldest_go_first(tmp_path: Path) -> None:
    cache = SqliteCache(tmp_path / "calls.sqlite", remembered=2)
    for i in range(3):
        cache.put(f"k{i}", Completion(f"a{i}", Usage(1, 1)))
    assert list(cache._seen) == ["k1", "k2"]  # k0 forgotten in memory ...
    assert cache.get("k0") == Completion("a0", Usage(1, 1))  # ... but still stored, and remembered again
    assert list(cache._seen) == ["k2", "k0"]
