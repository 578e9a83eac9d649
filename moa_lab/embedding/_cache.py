"""An on-disk embedding cache: one sqlite row per (embedder id, text)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
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
