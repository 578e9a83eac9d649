"""An on-disk embedding cache: one sqlite row per (embedder id, text)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from moa_lab.embedding._embedder import Embedder


class EmbeddingCache:
    """Vectors keyed by a hash of (embedder id, text), so re-training and routing the same queries
    embeds each text once. Safe to share between threads; sqlite serialises writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._db.commit()

    def encode(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`: cached rows are read, the rest encoded once and stored."""
        keys = [_key(embedder.id, t) for t in texts]
        found = self._get(set(keys))
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items())
        if missing:
            fresh = embedder.encode([t for _, t in missing])
            rows = [(k, np.asarray(v, np.float32).tobytes()) for (k, _), v in zip(missing, fresh)]
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                self._db.commit()
            found |= {k: np.frombuffer(b, np.float32) for k, b in rows}
        if not keys:
            return np.zeros((0, embedder.dim), np.float32)
        return np.stack([found[k] for k in keys])

    def _get(self, keys: set[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        wanted = list(keys)
        with self._lock:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                    out[key] = np.frombuffer(blob, np.float32)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _key(embedder_id: str, text: str) -> str:
    return hashlib.sha256(f"{embedder_id}\0{text}".encode()).hexdigest()


class Memoized:
    """An embedder that remembers its last `size` texts in memory: a search re-runs the same queries
    in every trial, and a repeated query should not pay the model again (nor a disk lookup)."""

    def __init__(self, embedder: Embedder, size: int = 20_000) -> None:
        self.embedder = embedder
        self.id = embedder.id
        self.dim = embedder.dim
        self.size = size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            fresh = self.embedder.encode(missing)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._memo[text] = np.asarray(vector, np.float32)
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                vector = self._memo.get(t)
                if vector is None:  # evicted by a huge batch: embed it again
                    vector = self.embedder.encode([t])[0]
                else:
                    self._memo.move_to_end(t)
                out.append(vector)
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)
