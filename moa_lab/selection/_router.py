"""The router artifact and the learned selector that loads it.

`moa_lab.routing` trains with scikit-learn and writes a folder; this module only reads it, and predicts
with numpy alone, so a topology with a learned selector loads no training library.

    router.json   format, version, embedder, proposers, aggregator, predictors, training metadata
    arrays.npz    the numbers: kNN memory, linear / MLP / factor weights, calibration, cost model
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
from moa_lab.embedding import Embedder, Memoized, build_embedder
from moa_lab.selection._vote import vote_static
from moa_lab.topology import AgentSpec

FORMAT = "moa-lab-router"
VERSION = 1
AGGREGATORS = ("vote", "synthesize")


def proposer_key(spec: AgentSpec | Mapping[str, Any]) -> str:
    """A proposer's identity in an artifact: its agent and every build argument, canonically ordered."""
    if isinstance(spec, AgentSpec):
        spec = {"agent": spec.agent, **spec.args}
    return json.dumps(dict(spec), sort_keys=True, separators=(",", ":"))


@dataclass
class Router:
    """A trained router: per-proposer P(success | query), $ per query, and the subset rule.

    `meta` is router.json; `arrays` the named numpy arrays it refers to.
    """

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _overall: dict[tuple[int, ...], float] = field(default_factory=dict, init=False, repr=False)

    @property
    def proposers(self) -> list[dict[str, Any]]:
        return list(self.meta["proposers"])

    @property
    def keys(self) -> list[str]:
        return [proposer_key(p) for p in self.meta["proposers"]]

    @property
    def aggregator(self) -> str:
        return str(self.meta["aggregator"])

    # -- persistence -------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "arrays.npz", **self.arrays)
        meta = {"format": FORMAT, "version": VERSION, "created": time.time()} | self.meta
        (folder / "router.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Router:
        """Read an artifact folder; a missing, foreign or newer-format folder is a ConfigError."""
        folder = Path(folder)
        path = folder / "router.json"
        if not path.is_file():
            raise ConfigError(f"{folder}: not a router artifact (no router.json); train one with `moa-lab router train`")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a moa-lab router (format {meta.get('format')!r})")
        if meta.get("version") != VERSION:
            raise ConfigError(f"{path}: router format version {meta.get('version')}, this moa-lab reads version {VERSION}")
        with np.load(folder / "arrays.npz") as data:
            arrays = {k: data[k] for k in data.files}
        return cls(meta, arrays)

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder other than the one the router was trained on."""
        want = self.meta["embedder"]
        if embedder.id != want["id"] or embedder.dim != want["dim"]:
            raise ConfigError(
                f"router was trained on embedder {want['id']!r} ({want['dim']} dims), not {embedder.id!r} "
                f"({embedder.dim} dims): vectors from another embedder mean nothing to it; retrain with "
                f"`moa-lab router train ... --embedder {want['spec'].get('kind', want['id'])}` or use the trained one"
            )

    def align(self, candidates: Sequence[AgentSpec | Mapping[str, Any]]) -> np.ndarray:
        """For each candidate proposer, its index in the router; a pool that differs is a ConfigError."""
        index = {k: i for i, k in enumerate(self.keys)}
        given = [proposer_key(c) for c in candidates]
        unknown = [k for k in given if k not in index]
        absent = [k for k in index if k not in given]
        if unknown or absent or len(set(given)) != len(given):
            lines = [f"router proposer pool does not match the topology's layer 1 ({len(index)} trained, {len(given)} given)"]
            lines += [f"  not in the router: {k}" for k in unknown[:5]] + _more(unknown)
            lines += [f"  missing from the topology: {k}" for k in absent[:5]] + _more(absent)
            if len(set(given)) != len(given):
                lines.append("  the topology lists a proposer twice")
            raise ConfigError("\n".join(lines) + "\nretrain the router on this pool, or use the pool it was trained on")
        return np.array([index[k] for k in given])

    # -- prediction ----------------------------------------------------------------------------------

    def success(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(proposer answers well) for query embeddings `x` (n, dim) -> (n, proposers)."""
        a = self.arrays
        raw = np.zeros((len(x), len(self.meta["proposers"])), np.float64)
        kinds = np.array([p["kind"] for p in self.meta["predictors"]])
        if "knn_x" in a and (kinds == "knn").any():
            raw[:, kinds == "knn"] = _knn(x, a["knn_x"], a["knn_y"], int(self.meta["knn_k"]))[:, kinds == "knn"]
        if "lr_w" in a:
            raw[:, kinds == "logistic"] = (x @ a["lr_w"] + a["lr_b"])[:, kinds == "logistic"]
        if "mf_w1" in a:
            hidden = np.maximum(x @ a["mf_w1"] + a["mf_b1"], 0.0)
            raw[:, kinds == "mf"] = (hidden @ a["mf_w2"] + a["mf_b2"])[:, kinds == "mf"]
        for m in np.flatnonzero(kinds == "mlp"):
            hidden = np.maximum(x @ a[f"mlp{m}_w1"] + a[f"mlp{m}_b1"], 0.0)
            raw[:, m] = (hidden @ a[f"mlp{m}_w2"] + a[f"mlp{m}_b2"]).ravel()
        platt = a["platt"]
        return _sigmoid(raw * platt[:, 0] + platt[:, 1])

    def cost(self, lengths: np.ndarray) -> np.ndarray:
        """Predicted $ per proposer for queries of `lengths` characters -> (n, proposers)."""
        c = self.arrays["cost"]
        return np.maximum(c[:, 0] + np.outer(np.asarray(lengths, np.float64), c[:, 1]), 0.0)

    # -- the subset rule -------------------------------------------------------------------------------

    def choose(self, p: np.ndarray, usd: np.ndarray, *, lam: float, k: int | None = None, max_usd: float | None = None,
               x: np.ndarray | None = None) -> list[int]:
        """The subset (indices in the router's proposer order) maximising predicted final quality
        − lam × predicted $, with at most k proposers and max_usd per query.

        The per-proposer predictions `p` build one candidate greedily. A vote router also keeps a
        library of subsets measured on its training queries; given the query embedding `x`, each
        candidate's vote is then judged by how it did on the query's nearest training queries
        (shrunk toward its overall accuracy), which sees what independent estimates cannot: whose
        errors coincide, and how the vote really breaks ties."""
        greedy = self._greedy(p, usd, lam=lam, k=k, max_usd=max_usd)
        if x is None or "lib_members" not in self.arrays:
            return greedy
        return self._from_library(x, greedy, usd, lam=lam, k=k, max_usd=max_usd)

    def _from_library(self, x: np.ndarray, greedy: list[int], usd: np.ndarray, *, lam: float, k: int | None,
                      max_usd: float | None) -> list[int]:
        a = self.arrays
        sims = a["knn_x"] @ x
        n = min(int(self.meta["lib_k"]), len(sims))
        nearest = np.argpartition(-sims, n - 1)[:n]
        w = np.maximum(sims[nearest], 0.0) + 1e-6
        alpha = float(self.meta["lib_shrink"])
        members = a["lib_members"]
        local = (w @ a["lib_outcome"][nearest] + alpha * a["lib_global"]) / (w.sum() + alpha)
        answers, success = a["train_answers"], a["train_success"]
        overall = self._overall.get(tuple(greedy))
        if overall is None:  # the greedy subset's accuracy on every training query, once per subset
            overall = self._overall[tuple(greedy)] = float(vote_static(answers, success, greedy).mean())
        mine = (w @ vote_static(answers[nearest], success[nearest], greedy) + alpha * overall) / (w.sum() + alpha)
        valid = members >= 0
        spend = np.append(np.where(valid, usd[np.where(valid, members, 0)], 0.0).sum(axis=1), usd[greedy].sum())
        sizes = np.append(valid.sum(axis=1), len(greedy))
        utility = np.append(local, mine) - lam * spend
        allowed = np.ones(len(utility), bool)
        if k is not None:
            allowed &= sizes <= k
        if max_usd is not None:
            allowed &= spend <= max_usd
        allowed[-1] = True  # the greedy subset already respects both limits
        best = int(np.argmax(np.where(allowed, utility, -np.inf)))
        return greedy if best == len(members) else [int(j) for j in members[best] if j >= 0]

    def _greedy(self, p: np.ndarray, usd: np.ndarray, *, lam: float, k: int | None, max_usd: float | None) -> list[int]:
        k = len(p) if k is None else max(1, min(k, len(p)))
        chosen: list[int] = []
        best = -np.inf
        while len(chosen) < k:
            sets = _extensions(chosen, len(p), k - len(chosen))
            if not sets:
                break
            width = max(len(s) for s in sets)
            members = np.array([s + [-1] * (width - len(s)) for s in sets])
            valid = members >= 0
            probs = np.where(valid, p[members], 0.0)
            spend = np.where(valid, usd[members], 0.0).sum(axis=1)
            utility = self.quality(probs, valid, members) - lam * spend
            if max_usd is not None:
                utility = np.where(spend <= max_usd, utility, -np.inf)
            i = int(np.argmax(utility))
            if utility[i] <= best and chosen:
                break
            if not np.isfinite(utility[i]):
                break
            best, chosen = float(utility[i]), sets[i]
        if not chosen:  # nothing fits the $ limit: the cheapest proposer alone
            chosen = [int(np.argmin(usd))]
        return sorted(chosen, key=lambda m: -p[m])

    def quality(self, probs: np.ndarray, valid: np.ndarray, members: np.ndarray) -> np.ndarray:
        """Predicted quality of the final answer for each row of member success probabilities."""
        if self.aggregator == "vote":
            return self.vote(probs, valid, members)
        diversity = self.arrays["diversity"]
        beta = float(self.meta.get("diversity_weight", 0.1))
        safe = np.where(valid, members, 0)
        pair = diversity[safe[:, :, None], safe[:, None, :]] * (valid[:, :, None] & valid[:, None, :])
        n = valid.sum(axis=1)
        mean_pair = pair.sum(axis=(1, 2)) / np.maximum(n * (n - 1), 1)
        return probs.max(axis=1) + beta * mean_pair

    def vote(self, probs: np.ndarray, valid: np.ndarray, members: np.ndarray) -> np.ndarray:
        """P(the vote is right): mixed over latent difficulty classes, within which proposers err
        independently. Hard questions are hard for every model, and this is what keeps the rule from
        believing that more weak voters always help."""
        mix = float(self.meta.get("vote_mix", 0.5))
        if "class_weight" not in self.arrays:
            return vote_quality(probs, valid, mix)
        logits = np.log(np.clip(probs, 1e-6, 1 - 1e-6) / np.clip(1 - probs, 1e-6, 1))
        safe = np.where(valid, members, 0)
        total = np.zeros(len(probs))
        for weight, shift in zip(self.arrays["class_weight"], self.arrays["class_shift"]):
            shifted = np.where(valid, _sigmoid(logits + shift[safe]), 0.0)
            total += weight * vote_quality(shifted, valid, mix)
        return total


def _more(items: list[str], shown: int = 5) -> list[str]:
    return [f"  ... and {len(items) - shown} more"] if len(items) > shown else []


def vote_quality(probs: np.ndarray, valid: np.ndarray, mix: float) -> np.ndarray:
    """P(a plurality vote is right) for rows of independent member success probabilities, members
    ordered so that ties go to the first. A mix of two error models: wrong answers all distinct
    (right when two agree, or when the first is right) and wrong answers all alike (right on a strict
    majority, half a chance on an even split); `mix` is the weight of the first, fitted in training."""
    order = np.argsort(-probs, axis=1)
    probs = np.take_along_axis(probs, order, axis=1)
    n = valid.sum(axis=1)
    first = probs[:, 0]
    rest = _count_distribution(probs[:, 1:])
    distinct = first + (1 - first) * (1 - rest[:, 0] - rest[:, 1])
    counts = _count_distribution(probs)
    c = np.arange(counts.shape[1])
    majority = (counts * ((2 * c[None, :] > n[:, None]) + 0.5 * (2 * c[None, :] == n[:, None]))).sum(axis=1)
    return mix * distinct + (1 - mix) * majority


def _count_distribution(probs: np.ndarray) -> np.ndarray:
    """Row-wise distribution of the number of successes (Poisson-binomial); at least 2 columns."""
    dist = np.zeros((probs.shape[0], max(probs.shape[1] + 1, 2)))
    dist[:, 0] = 1.0
    for j in range(probs.shape[1]):
        p = probs[:, j:j + 1]
        dist[:, 1:] = dist[:, 1:] * (1 - p) + dist[:, :-1] * p
        dist[:, :1] *= 1 - p
    return dist


def _extensions(chosen: list[int], m: int, room: int) -> list[list[int]]:
    """`chosen` plus one proposer, or plus two (a vote can gain only from adding two at once)."""
    rest = [i for i in range(m) if i not in chosen]
    sets = [chosen + [i] for i in rest]
    if room >= 2:
        sets += [chosen + [i, j] for a, i in enumerate(rest) for j in rest[a + 1:]]
    return sets


def _knn(x: np.ndarray, memory: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Similarity-weighted share of successes among the k nearest training queries (NaN = unknown)."""
    sims = x @ memory.T
    k = min(k, memory.shape[0])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(sims, nearest, axis=1), 0.0) + 1e-6
    y = labels[nearest]  # (n, k, proposers)
    known = ~np.isnan(y)
    num = (np.where(known, y, 0.0) * weights[:, :, None]).sum(axis=1)
    den = (known * weights[:, :, None]).sum(axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.5)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


class LearnedSelector:
    """A selector backed by a router artifact: embeds the query, predicts each proposer's success and
    cost, and calls the subset the router's rule picks. `lam` is the price of a dollar in quality
    points (larger = cheaper subsets); `k` and `max_usd` cap the subset."""

    def __init__(self, router: Router, embedder: Embedder, *, lam: float, k: int | None, max_usd: float | None) -> None:
        router.check_embedder(embedder)
        self.router = router
        self.embedder = embedder
        self.lam = lam
        self.k = k
        self.max_usd = max_usd
        self._order: np.ndarray | None = None
        self._position = np.zeros(0, int)
        self._keys: tuple[str, ...] = ()

    def bind(self, candidates: Sequence[AgentSpec]) -> None:
        """Check the topology's pool against the router's once, before any query runs."""
        self._order = self.router.align(candidates)
        self._position = np.argsort(self._order)  # router index -> candidate index
        self._keys = tuple(proposer_key(c) for c in candidates)

    def select(self, query: str, candidates: Sequence[AgentSpec]) -> list[int]:
        if self._order is None or tuple(proposer_key(c) for c in candidates) != self._keys:
            self.bind(candidates)
        assert self._order is not None
        x = self.embedder.encode([query])
        p = self.router.success(x)[0]
        usd = self.router.cost(np.array([len(query)]))[0]
        chosen = self.router.choose(p, usd, lam=self.lam, k=self.k, max_usd=self.max_usd, x=x[0])
        return [int(self._position[j]) for j in chosen]


def learned_selector(path: str, lam: float | None = None, k: int | None = None, max_usd: float | None = None,
                     embedder: str | dict[str, Any] | None = None) -> LearnedSelector:
    """Route each query with a trained router artifact (`moa-lab router train`)."""
    router = Router.load(path)
    defaults = router.meta.get("defaults", {})
    built = _shared_embedder(embedder if embedder is not None else router.meta["embedder"]["spec"])
    return LearnedSelector(
        router, built,
        lam=float(defaults.get("lam", 0.0) if lam is None else lam),
        k=defaults.get("k") if k is None else int(k),
        max_usd=defaults.get("max_usd") if max_usd is None else float(max_usd),
    )


_EMBEDDERS: dict[str, Embedder] = {}


def _shared_embedder(spec: str | Mapping[str, Any]) -> Embedder:
    """One embedder per spec per process: a study builds a selector per trial, the model loads once
    and each query is embedded once."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Memoized(build_embedder(spec))
    return _EMBEDDERS[key]
