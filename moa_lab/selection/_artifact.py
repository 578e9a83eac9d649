"""The router artifact: a folder `moa_lab.routing` writes once and inference only reads.

    router.json   format, version, embedder, proposers, aggregator, predictors, training metadata;
                  for vote routers `operating` (per λ: route, or one static subset) and `cascade`
                  (learned `CascadePlan`s and the plan chosen per λ)
    arrays.npz    the numbers: kNN memory, linear / MLP / factor weights, calibration, cost model,
                  the vote model and the library of measured subsets

Predictions are the kernels of `_kernels` applied to these arrays, so they need numpy alone.
"""

from __future__ import annotations

import json
import time
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.embedding import Embedder
from moa_lab.selection._cascade import CascadePlan
from moa_lab.selection._kernels import knn_success, mlp_logits, sigmoid
from moa_lab.selection._operating import OperatingPoint, StaticOption, nearest_point, static_option, switch_lambdas
from moa_lab.selection._rules import Library, SingleModel, SubsetRule, SynthesisModel, VoteModel
from moa_lab.topology import AgentSpec

FORMAT = "moa-lab-router"
VERSION = 2
READS = (1, 2)
"""Artifact versions this moa-lab reads: version 1 (before `operating` and `cascade`) routes at every λ."""
AGGREGATORS = ("vote", "synthesize", "single")
"""What a router's subsets feed: a vote, a synthesizing aggregator, or nothing (`single`: one
proposer per query, whose answer is the answer)."""

_AGAIN = "train the router again (`moa-lab router train`) or copy the whole artifact folder again"
_REQUIRED = {"platt", "cost"}
_NEEDED_BY = {"knn": {"knn_x", "knn_y"}, "logistic": {"lr_w", "lr_b"}, "mf": {"mf_w1", "mf_b1", "mf_w2", "mf_b2"}}
_LIBRARY = {"knn_x", "lib_members", "lib_outcome", "lib_global", "train_answers", "train_success"}


def proposer_key(spec: AgentSpec | Mapping[str, Any]) -> str:
    """A proposer's identity in an artifact: its agent and every build argument, canonically ordered."""
    if isinstance(spec, AgentSpec):
        spec = {"agent": spec.agent, **spec.args}
    return json.dumps(dict(spec), sort_keys=True, separators=(",", ":"))


@dataclass
class Router:
    """A trained router: per-proposer P(success | query), $ per query, and the subset rule.

    `meta` is router.json; `arrays` the named numpy arrays it refers to. Both are read, never
    changed: training builds a Router once, from parameters it has finished fitting."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def proposers(self) -> list[dict[str, Any]]:
        """The trained pool, one build spec (`{agent, ...args}`) per proposer, in router order."""
        return list(self.meta["proposers"])

    @property
    def keys(self) -> list[str]:
        """Each proposer's `proposer_key`, in router order."""
        return [proposer_key(p) for p in self.meta["proposers"]]

    @property
    def aggregator(self) -> str:
        """The aggregator the subsets feed: one of AGGREGATORS."""
        return str(self.meta["aggregator"])

    # -- persistence -------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write router.json and arrays.npz into `folder` (created if missing)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "arrays.npz", **self.arrays)
        meta = {"format": FORMAT, "version": VERSION, "created": time.time()} | self.meta
        (folder / "router.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Router:
        """Read an artifact folder; a missing, foreign, newer-format or incomplete folder is a ConfigError."""
        folder = Path(folder)
        path = folder / "router.json"
        if not path.is_file():
            raise ConfigError(f"{folder}: not a router artifact (no router.json); train one with `moa-lab router train`")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: damaged ({type(exc).__name__}: {exc}); {_AGAIN}") from None
        if not isinstance(meta, dict):
            raise ConfigError(f"{path}: not a moa-lab router (not a JSON object); {_AGAIN}")
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a moa-lab router (format {meta.get('format')!r})")
        if meta.get("version") not in READS:
            raise ConfigError(f"{path}: router format version {meta.get('version')}, this moa-lab reads versions "
                              f"{', '.join(map(str, READS))}; retrain it or upgrade moa-lab")
        if not (folder / "arrays.npz").is_file():
            raise ConfigError(f"{folder}: router.json without arrays.npz; copy the whole artifact folder")
        try:
            with np.load(folder / "arrays.npz") as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ConfigError(f"{folder / 'arrays.npz'}: damaged ({type(exc).__name__}: {exc}); {_AGAIN}") from None
        router = cls(meta, arrays)
        router.validate(where=str(folder))
        return router

    def validate(self, where: str = "router") -> None:
        """Check that every array the metadata refers to is present; a ConfigError names what is missing."""
        if self.aggregator not in AGGREGATORS:
            raise ConfigError(f"{where}: unknown aggregator {self.aggregator!r} (known: {', '.join(AGGREGATORS)})")
        missing_keys = [k for k in ("proposers", "predictors", "embedder") if k not in self.meta]
        if missing_keys:
            raise ConfigError(f"{where}: router.json lacks {', '.join(missing_keys)}; retrain it")
        kinds = [p["kind"] for p in self.meta["predictors"]]
        if len(kinds) != len(self.meta["proposers"]):
            raise ConfigError(f"{where}: {len(kinds)} predictors for {len(self.meta['proposers'])} proposers")
        needed = set(_REQUIRED)
        for j, kind in enumerate(kinds):
            needed |= _NEEDED_BY.get(kind, set())
            if kind == "mlp":
                needed |= {f"mlp{j}_w1", f"mlp{j}_b1", f"mlp{j}_w2", f"mlp{j}_b2"}
        if self.aggregator == "synthesize":
            needed.add("diversity")
        if "lib_members" in self.arrays:
            needed |= _LIBRARY
        missing = sorted(needed - set(self.arrays))
        if missing:
            raise ConfigError(f"{where}: the artifact lacks arrays {', '.join(missing)}; retrain it")

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder other than the one the router was trained on."""
        check_embedder(self.meta["embedder"], embedder, "router", "moa-lab router train ...")

    def align(self, candidates: Sequence[AgentSpec | Mapping[str, Any]]) -> np.ndarray:
        """For each candidate proposer, its index in the router; a pool that differs is a ConfigError."""
        return align_pool(self.keys, candidates, "router")

    # -- prediction ----------------------------------------------------------------------------------

    def success(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(proposer answers well) for query embeddings `x` (n, dim) -> (n, proposers)."""
        a = self.arrays
        raw = np.zeros((len(x), len(self.meta["proposers"])), np.float64)
        kinds = np.array([p["kind"] for p in self.meta["predictors"]])
        if "knn_x" in a and (kinds == "knn").any():
            raw[:, kinds == "knn"] = knn_success(x, a["knn_x"], a["knn_y"], int(self.meta["knn_k"]))[:, kinds == "knn"]
        if "lr_w" in a:
            raw[:, kinds == "logistic"] = (x @ a["lr_w"] + a["lr_b"])[:, kinds == "logistic"]
        if "mf_w1" in a:
            raw[:, kinds == "mf"] = mlp_logits(x, a["mf_w1"], a["mf_b1"], a["mf_w2"], a["mf_b2"])[:, kinds == "mf"]
        for m in np.flatnonzero(kinds == "mlp"):
            raw[:, m] = mlp_logits(x, a[f"mlp{m}_w1"], a[f"mlp{m}_b1"], a[f"mlp{m}_w2"], a[f"mlp{m}_b2"]).ravel()
        platt = a["platt"]
        return sigmoid(raw * platt[:, 0] + platt[:, 1])

    def cost(self, lengths: np.ndarray) -> np.ndarray:
        """Predicted $ per proposer for queries of `lengths` characters -> (n, proposers)."""
        c = self.arrays["cost"]
        return np.maximum(c[:, 0] + np.outer(np.asarray(lengths, np.float64), c[:, 1]), 0.0)

    # -- what it does at a λ ---------------------------------------------------------------------------

    @cached_property
    def operating(self) -> list[OperatingPoint]:
        """Per trained λ, routing or one static subset (empty for routers that always route)."""
        return [OperatingPoint.from_dict(p) for p in self.meta.get("operating", {}).get("points", [])]

    @cached_property
    def cascades(self) -> list[CascadePlan]:
        """The learned cascades, cheapest first (empty when none were learned)."""
        return [CascadePlan.from_dict(p) for p in self.meta.get("cascade", {}).get("plans", [])]

    @cached_property
    def static_front(self) -> list[StaticOption]:
        """The training split's cost-accuracy front of static subsets, cheapest first."""
        return [StaticOption.from_dict(o) for o in self.meta.get("operating", {}).get("front", [])]

    def static_subset(self, lam: float, *, k: int | None = None) -> list[int] | None:
        """The static subset the router calls for every query at `lam`, or None where it routes per
        query (or the subset exceeds `k`). Routing or not is the choice trained at the nearest λ; the
        subset is the front's option `static_option` names (the best at routing's price at `lam`,
        the most accurate at λ = 0, the cheapest at λ = inf)."""
        point = nearest_point(self.operating, lam)
        if point is None or point.routes:
            return None
        subset = point.subset
        if self.static_front:
            slack = float(self.meta["operating"].get("same_price", 1.0))
            subset = static_option(self.operating, self.static_front, lam, slack).subset
        if k is not None and len(subset) > k:
            return None
        return list(subset)

    def static_lambdas(self) -> list[float]:
        """λ at which to sweep the router to meet every static subset it calls at some λ (see
        `switch_lambdas`); empty for routers that always route."""
        if not self.operating or not self.static_front:
            return []
        return switch_lambdas(self.operating, self.static_front, float(self.meta["operating"].get("same_price", 1.0)))

    def cascade(self, lam: float) -> CascadePlan | None:
        """The cascade with the best training accuracy − lam × $, or None when none was learned."""
        plans = self.cascades
        if not plans:
            return None
        return max(plans, key=lambda p: (p.accuracy or 0.0) - lam * (p.usd or 0.0))

    # -- the subset rule -------------------------------------------------------------------------------

    @cached_property
    def rule(self) -> SubsetRule:
        """The subset rule this artifact's arrays describe."""
        a, meta = self.arrays, self.meta
        if self.aggregator == "single":
            return SubsetRule(SingleModel())
        if self.aggregator == "synthesize":
            return SubsetRule(SynthesisModel(a["diversity"], float(meta.get("diversity_weight", 0.1))), similarity=a.get("error_similarity"))
        model = VoteModel(float(meta.get("vote_mix", 0.5)), a.get("class_weight"), a.get("class_shift"))
        library = None
        if "lib_members" in a:
            library = Library(a["knn_x"], a["lib_members"], a["lib_outcome"], a["lib_global"], a["train_answers"],
                              a["train_success"], int(meta["lib_k"]), float(meta["lib_shrink"]))
        return SubsetRule(model, library, a.get("error_similarity"))

    def choose(self, p: np.ndarray, usd: np.ndarray, *, lam: float, k: int | None = None, max_usd: float | None = None,
               x: np.ndarray | None = None, diversity: float = 0.0) -> list[int]:
        """The subset (indices in the router's proposer order) for one query: the static subset
        where training found routing no better at this λ (`static_subset`; unless it breaks
        `max_usd`), else the one maximising predicted final quality − lam × predicted $ (+ diversity × how
        differently the members err), with at most k proposers (one for a `single` router) and max_usd per query (see `SubsetRule`)."""
        if self.aggregator == "single":
            k = 1
        static = self.static_subset(lam, k=k)
        if static is not None and (max_usd is None or float(usd[static].sum()) <= max_usd):
            return static
        return self.rule.choose(p, usd, lam=lam, k=k, max_usd=max_usd, x=x, diversity=diversity)


def check_embedder(want: Mapping[str, Any], embedder: Embedder, what: str, command: str) -> None:
    """Refuse an embedder other than `want` (the `embedder` entry of a `what` artifact, which
    `command` trains): vectors from another embedder mean nothing to what was fitted on its vectors."""
    if embedder.id != want["id"] or embedder.dim != want["dim"]:
        raise ConfigError(
            f"{what} was trained on embedder {want['id']!r} ({want['dim']} dims), not {embedder.id!r} "
            f"({embedder.dim} dims): vectors from another embedder mean nothing to it; retrain with "
            f"`{command} --embedder {want['spec'].get('kind', want['id'])}` or use the trained one"
        )


def align_pool(keys: Sequence[str], candidates: Sequence[AgentSpec | Mapping[str, Any]], what: str) -> np.ndarray:
    """For each candidate proposer, its index among an artifact's proposer `keys`; a pool that
    differs is a ConfigError listing the differences. `what` names the artifact ("router")."""
    index = {k: i for i, k in enumerate(keys)}
    given = [proposer_key(c) for c in candidates]
    unknown = [k for k in given if k not in index]
    absent = [k for k in index if k not in given]
    if unknown or absent or len(set(given)) != len(given):
        lines = [f"{what} proposer pool does not match the topology's layer 1 ({len(index)} trained, {len(given)} given)"]
        lines += [f"  not in the {what}: {k}" for k in unknown[:5]] + _more(unknown)
        lines += [f"  missing from the topology: {k}" for k in absent[:5]] + _more(absent)
        if len(set(given)) != len(given):
            lines.append("  the topology lists a proposer twice")
        raise ConfigError("\n".join(lines) + f"\nretrain the {what} on this pool, or use the pool it was trained on")
    return np.array([index[k] for k in given])


def _more(items: list[str], shown: int = 5) -> list[str]:
    return [f"  ... and {len(items) - shown} more"] if len(items) > shown else []
