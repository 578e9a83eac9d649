"""The `diverse` selector: per query, k proposers that are competent and whose mistakes differ,
judged without labels from their recorded answers to the query's nearest reference queries.

On each reference query the pool's plurality answer is the *consensus*. Near a new query (its
nearest reference queries by embedding, weighted by similarity and shrunk toward the whole reference
set), a proposer's *competence* is how often it gave the consensus, and two proposers are *similar*
when they deviate from it alike (the same other answer on the same query). The k proposers are the
greedy MAP of a determinantal point process whose kernel is competence × similarity × competence
(`dpp_greedy`): a competent proposer is kept unless one already chosen makes the same mistakes.

The artifact is a folder `moa_lab.routing` writes (`moa-lab router diverse`) and this module only
reads, with numpy:

    reference.json  format, version, embedder, proposers, neighbours, shrinkage, defaults, training
    arrays.npz      memory (reference query embeddings), agree (1 = gave the consensus, 0 = did not,
                    NaN = not called), deviation (the id of a non-consensus answer within its query,
                    -1 otherwise), pool_agree and pool_gram (the same over every reference query)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.embedding import Embedder
from moa_lab.selection._artifact import align_pool, check_embedder, proposer_key
from moa_lab.selection._kernels import answer_similarity, deviation_gram, dpp_greedy, nearest
from moa_lab.topology import AgentSpec

FORMAT = "moa-lab-reference"
VERSION = 1
_ARRAYS = ("memory", "agree", "deviation", "pool_agree", "pool_gram")
_COMMAND = "moa-lab router diverse DATA --out DIR"


@dataclass
class Reference:
    """Recorded answers of a proposer pool to reference queries, as the diverse selector reads them.

    `meta` is reference.json; `arrays` the named arrays it refers to (see the module docstring).
    Read, never changed: `moa_lab.routing` builds it once from finished computations."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def proposers(self) -> list[dict[str, Any]]:
        """The pool, one build spec (`{agent, ...args}`) per proposer, in reference order."""
        return list(self.meta["proposers"])

    @property
    def keys(self) -> list[str]:
        """Each proposer's `proposer_key`, in reference order."""
        return [proposer_key(p) for p in self.meta["proposers"]]

    def save(self, folder: str | Path) -> Path:
        """Write reference.json and arrays.npz into `folder` (created if missing)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "arrays.npz", **self.arrays)
        meta = {"format": FORMAT, "version": VERSION, "created": time.time()} | self.meta
        (folder / "reference.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Reference:
        """Read an artifact folder; a missing, foreign, newer-format or incomplete one is a ConfigError."""
        folder = Path(folder)
        path = folder / "reference.json"
        if not path.is_file():
            raise ConfigError(f"{folder}: not a diverse-selector reference (no reference.json); build one with `{_COMMAND}`")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a moa-lab reference set (format {meta.get('format')!r})")
        if meta.get("version") != VERSION:
            raise ConfigError(f"{path}: reference format version {meta.get('version')}, this moa-lab reads version {VERSION}")
        if not (folder / "arrays.npz").is_file():
            raise ConfigError(f"{folder}: reference.json without arrays.npz; copy the whole folder")
        with np.load(folder / "arrays.npz") as data:
            arrays = {k: data[k] for k in data.files}
        reference = cls(meta, arrays)
        reference.validate(where=str(folder))
        return reference

    def validate(self, where: str = "reference") -> None:
        """Check the arrays are all there and fit the pool; a ConfigError names what is wrong."""
        missing = [k for k in ("proposers", "embedder", "neighbours", "shrink") if k not in self.meta]
        missing += [k for k in _ARRAYS if k not in self.arrays]
        if missing:
            raise ConfigError(f"{where}: the reference lacks {', '.join(missing)}; build it again with `{_COMMAND}`")
        m, n = len(self.meta["proposers"]), len(self.arrays["memory"])
        shapes = {"agree": (n, m), "deviation": (n, m), "pool_agree": (m,), "pool_gram": (m, m)}
        wrong = [f"{k} {self.arrays[k].shape} (expected {s})" for k, s in shapes.items() if self.arrays[k].shape != s]
        if wrong:
            raise ConfigError(f"{where}: arrays that do not fit {n} queries × {m} proposers: {', '.join(wrong)}")

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder other than the one the reference queries were embedded with."""
        check_embedder(self.meta["embedder"], embedder, "reference", _COMMAND)

    def align(self, candidates: Sequence[AgentSpec | Mapping[str, Any]]) -> np.ndarray:
        """For each candidate proposer, its index in the reference; a pool that differs is a ConfigError."""
        return align_pool(self.keys, candidates, "reference")

    def neighbourhood(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For one query embedding `x`: each proposer's competence (the similarity-weighted share of
        the nearest reference queries on which it gave the consensus) and the proposers' similarity
        (`answer_similarity` of how they deviate there), both shrunk toward the whole reference set
        by `shrink` pseudo-queries."""
        a = self.arrays
        index, w = nearest(a["memory"] @ x, int(self.meta["neighbours"]))
        shrink = float(self.meta["shrink"])
        agree = a["agree"][index]
        known = ~np.isnan(agree)
        competence = (w @ np.nan_to_num(agree) + shrink * a["pool_agree"]) / (w @ known + shrink)
        total = float(w.sum()) + shrink
        gram = (w.sum() * deviation_gram(a["deviation"][index], w) + shrink * a["pool_gram"]) / total
        return competence, answer_similarity(gram, 1.0 / total)

    def choose(self, x: np.ndarray, *, k: int, diversity: float = 1.0) -> list[int]:
        """k proposers (indices in reference order, most competent first) for the query embedded as
        `x`: the greedy choice of `dpp_greedy`, with `diversity` the weight of their dissimilarity
        (0 = the k most competent)."""
        competence, similarity = self.neighbourhood(x)
        chosen = dpp_greedy(competence, similarity, k, diversity)
        return sorted(chosen, key=lambda j: -competence[j])


class DiverseSelector:
    """A selector backed by a reference set: embeds the query and calls the k proposers
    `Reference.choose` picks for it."""

    def __init__(self, reference: Reference, embedder: Embedder, *, k: int, diversity: float) -> None:
        reference.check_embedder(embedder)
        self.reference = reference
        self.embedder = embedder
        self.k = k
        self.diversity = diversity
        self._position: np.ndarray | None = None
        self._keys: tuple[str, ...] = ()

    def bind(self, candidates: Sequence[AgentSpec]) -> None:
        """Check the topology's pool against the reference's once, before any query runs."""
        self._position = np.argsort(self.reference.align(candidates))  # reference index -> candidate index
        self._keys = tuple(proposer_key(c) for c in candidates)

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        """Indices into `candidates` of the proposers this query calls."""
        if self._position is None or tuple(proposer_key(c) for c in candidates) != self._keys:
            self.bind(candidates)
        assert self._position is not None
        x = self.embedder.encode([query])[0]
        return [int(self._position[j]) for j in self.reference.choose(x, k=self.k, diversity=self.diversity)]


def diverse_selector(path: str, k: int, diversity: float | None = None,
                     embedder: str | dict[str, Any] | None = None) -> DiverseSelector:
    """A `DiverseSelector` over the reference folder at `path`; `diversity` defaults to the reference's."""
    from moa_lab.selection._learned import shared_embedder

    reference = Reference.load(path)
    if k < 1:
        raise ConfigError(f"selector k must be at least 1, not {k}")
    weight = float(reference.meta.get("defaults", {}).get("diversity", 1.0) if diversity is None else diversity)
    if weight < 0:
        raise ConfigError(f"diversity must be at least 0 (0 = the k most competent), not {weight}")
    built = shared_embedder(embedder if embedder is not None else reference.meta["embedder"]["spec"])
    return DiverseSelector(reference, built, k=int(k), diversity=weight)
