"""Content-addressed call cache: (model, messages, sampling, sample index) -> completion."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from moa_lab.core import Completion, Request, StoreDamaged, Usage


class CallCache(Protocol):
    """Where completions are kept. Implementations must be safe across processes."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, completion: Completion) -> None: ...


def call_key(model_ref: str, request: Request, sample_index: int) -> str:
    """sha256 of everything that determines a call's answer."""
    payload = {
        "model": model_ref,
        "messages": [m.to_dict() for m in request.messages],
        "sampling": request.sampling.to_dict(),
        "sample_index": sample_index,
    }
    if request.prompt is not None:
        payload["prompt"] = request.prompt
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def encode(completion: Completion) -> str:
    return json.dumps(
        {
            "text": completion.text,
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "finish_reason": completion.finish_reason,
            "usage_estimated": completion.usage_estimated,
            "latency_s": completion.latency_s,
        }
    )


def decode(value: str) -> Completion:
    d = json.loads(value)
    return Completion(
        d["text"], Usage(d["input_tokens"], d["output_tokens"]), d["finish_reason"], d["usage_estimated"], d.get("latency_s", 0.0)
    )


class SqliteCache:
    """The default cache: one sqlite file in WAL mode, shared safely by concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._guard():
            self._connect().execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """A damaged database is one error naming the file and the fix, not one per sample."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(f"{self.path}: the call cache is damaged ({exc}); move it away (or run with "
                               "--no-cache) and run again") from None

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def get(self, key: str) -> Completion | None:
        with self._guard():
            row = self._connect().execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        return decode(row[0]) if row else None

    def put(self, key: str, completion: Completion) -> None:
        with self._guard():
            self._connect().execute(
                "INSERT OR REPLACE INTO calls (key, value, created) VALUES (?, ?, ?)",
                (key, encode(completion), time.time()),
            )

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM calls").fetchone()[0])


class MemoryCache:
    """A cache that lives as long as the process; for tests and throwaway runs."""

    def __init__(self) -> None:
        self._data: dict[str, Completion] = {}

    def get(self, key: str) -> Completion | None:
        return self._data.get(key)

    def put(self, key: str, completion: Completion) -> None:
        self._data[key] = completion

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """A call cache on a Redis server, shared by search workers on several machines
    (`cache: redis://host:6379/0` in an experiment). Needs the `redis` package."""

    def __init__(self, url: str, *, prefix: str = "moa-lab:call:") -> None:
        try:
            import redis
        except ImportError:
            raise ImportError("the Redis call cache needs the redis package: pip install 'moa-lab[redis]'") from None
        self._db = redis.Redis.from_url(url)
        self._prefix = prefix

    def get(self, key: str) -> Completion | None:
        value = self._db.get(self._prefix + key)
        return decode(value.decode()) if value is not None else None

    def put(self, key: str, completion: Completion) -> None:
        self._db.set(self._prefix + key, encode(completion))
