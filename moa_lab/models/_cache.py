"""Content-addressed call cache: (model, messages, sampling, sample index) -> completion.

Caches shared by processes (sqlite, Redis) also hold *claims*: the process about to make a call
claims its key, and another process that misses the same key waits for the answer instead of
paying for the call again (`Model.call`). A claim whose holder died (on this host), or that is
older than `CLAIM_TTL_S`, is taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from moa_lab.core import Completion, Request, StoreDamaged, Usage, process_gone, this_process

CLAIM_TTL_S = 600.0
"""A claim this old is taken over even when its holder may be alive: a call that long is stuck."""


class CallCache(Protocol):
    """Where completions are kept. Implementations must be safe across processes."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, completion: Completion) -> None: ...


@runtime_checkable
class SharedCache(CallCache, Protocol):
    """A cache several processes use at once, which lets one of them make each call."""

    def claim(self, key: str) -> bool:
        """True when this process may make the call `key` (no other live process claims it);
        the claim ends with `put` or `release`."""
        ...

    def release(self, key: str) -> None:
        """End this process's claim on `key` without an answer (the call failed)."""
        ...


def claim_is_stale(host: str, pid: int, at: float) -> bool:
    """Whether a claim taken by process `pid` on `host` at time `at` may be taken over."""
    return time.time() - at > CLAIM_TTL_S or process_gone(host, pid)


class Bounded(dict):  # type: ignore[type-arg]
    """A dict that forgets its oldest entry once it holds `size` (reads stay plain dict lookups)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: object, value: object) -> None:
        if len(self) >= self.size:
            self.pop(next(iter(self)), None)
        self[key] = value


_KEYS = Bounded(1 << 16)


def remembered(kind: str, request: Request, *extra: object, make: Callable[[], str]) -> str:
    """A request's `kind` of key, made once per distinct request (a study plans and makes every call
    of every trial: hashing its JSON each time was most of a replayed trial's time). Sampling's
    number types are part of what is remembered: `temperature=1` and `1.0` are equal but hash as
    different JSON."""
    s = request.sampling
    # flat, of strings and numbers: hashing the dataclasses themselves would run Python code per field
    memo = (kind, *extra, request.model, request.prompt, request.sample_index, s.temperature, type(s.temperature),
            s.max_tokens, s.top_p, type(s.top_p), s.seed, s.stop, *[part for m in request.messages for part in (m.role, m.content)])
    key = _KEYS.get(memo)
    if key is None:
        _KEYS.keep(memo, key := make())
    return key


def call_key(model_ref: str, request: Request, sample_index: int) -> str:
    """sha256 of everything that determines a call's answer."""
    return remembered("call", request, model_ref, sample_index, make=lambda: _call_key(model_ref, request, sample_index))


def _call_key(model_ref: str, request: Request, sample_index: int) -> str:
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
    """The default cache: one sqlite file in WAL mode, shared safely by concurrent processes.

    Entries this process has read or written are also kept in memory (up to `remembered`): a study
    asks for the same calls in every trial, and a key's answer never changes once stored. Misses are
    not remembered, since another process may store the answer at any time."""

    def __init__(self, path: Path, *, remembered: int = 1 << 16) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._seen = Bounded(remembered)
        with self._guard():
            db = self._connect()
            db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
            db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL)")

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
        seen = self._seen.get(key)
        if seen is not None:
            return seen
        with self._guard():
            row = self._connect().execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._seen.keep(key, completion := decode(row[0]))
        return completion

    def put(self, key: str, completion: Completion) -> None:
        with self._guard():
            db = self._connect()
            with db:  # the answer and the end of its claim, together
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO calls (key, value, created) VALUES (?, ?, ?)", (key, encode(completion), time.time()))
                db.execute("DELETE FROM claims WHERE key = ? AND host = ? AND pid = ?", (key, *this_process()))
        self._seen.keep(key, completion)

    def claim(self, key: str) -> bool:
        host, pid = this_process()
        with self._guard():
            db = self._connect()
            with db:
                db.execute("BEGIN IMMEDIATE")  # read and take in one write transaction: one process wins
                row = db.execute("SELECT host, pid, at FROM claims WHERE key = ?", (key,)).fetchone()
                if row is not None and (row[0], row[1]) != (host, pid) and not claim_is_stale(*row):
                    return False
                db.execute("INSERT OR REPLACE INTO claims (key, host, pid, at) VALUES (?, ?, ?, ?)", (key, host, pid, time.time()))
                return True

    def release(self, key: str) -> None:
        with self._guard():
            self._connect().execute("DELETE FROM claims WHERE key = ? AND host = ? AND pid = ?", (key, *this_process()))

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
        self.release(key)

    def claim(self, key: str) -> bool:
        host, pid = this_process()
        name, mine = f"{self._prefix}claim:{key}", f"{host}:{pid}:{time.time()}"
        if self._db.set(name, mine, nx=True, ex=int(CLAIM_TTL_S)):  # expires by itself: held by no one for good
            return True
        held = self._db.get(name)
        if held is None:
            return bool(self._db.set(name, mine, nx=True, ex=int(CLAIM_TTL_S)))
        holder, _, at = held.decode().rpartition(":")
        holder_host, _, holder_pid = holder.rpartition(":")
        if (holder_host, holder_pid) == (host, str(pid)):
            return True
        if not claim_is_stale(holder_host, int(holder_pid), float(at)):
            return False
        # take it over only if it is still the stale one (another waiter may have been first)
        return bool(self._db.eval(_SWAP, 1, name, held, mine, int(CLAIM_TTL_S)))

    def release(self, key: str) -> None:
        host, pid = this_process()
        self._db.eval(_RELEASE, 1, f"{self._prefix}claim:{key}", f"{host}:{pid}:")


_SWAP = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end return nil"
_RELEASE = "local v = redis.call('get', KEYS[1]) if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
