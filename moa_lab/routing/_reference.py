"""A diverse selector's two jobs end to end: build its reference set (data -> embeddings ->
artifact, `moa-lab router diverse`), and replay it on the held-out queries against top-k and random-k
at equal k, every method a plurality vote over the recorded answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.routing._data import RoutingData
from moa_lab.routing._diversity import fit_reference
from moa_lab.routing._workflow import as_embedder_spec, embed_data
from moa_lab.selection import Reference, vote_routed

METHODS = ("diverse", "top-k", "top-k-train", "random-k")
"""`diverse`: the selector; `top-k`: the same label-free competence without diversity (the k most
competent near the query); `top-k-train`: the k most accurate on the training split (labels);
`random-k`: k drawn at random per query."""


@dataclass
class Choice:
    """One method at one k, per held-out query: whether the vote of the chosen proposers is right
    (for random-k the share of draws in which it is), whether any of them is right, and their $."""

    method: str
    k: int
    vote: np.ndarray
    any_right: np.ndarray
    usd: np.ndarray


@dataclass
class Comparison:
    """Every method at every k on the same held-out queries."""

    test_ids: list[str]
    train_queries: int
    choices: list[Choice]

    def get(self, method: str, k: int) -> Choice:
        """The choice of `method` at `k`."""
        return next(c for c in self.choices if c.method == method and c.k == k)


def build_reference(source: str | Path, out: str | Path, *, embedder: str | dict[str, Any] | None = None,
                    test_fraction: float = 0.3, seed: int = 0, holdout: bool = True, diversity: float = 1.0,
                    labels: bool = False, **data_args: Any) -> Reference:
    """Build a diverse selector's reference set from `source` and write it to `out` (from the
    scores instead of the consensus with `labels`, see `fit_reference`). With `holdout` (the
    default) the seeded test split is left out, so `compare_selectors` measures on queries the
    reference does not hold."""
    spec = as_embedder_spec(embedder)
    loaded = embed_data(source, spec, **data_args)
    data = loaded.data
    rows, _ = data.split(test_fraction, seed) if holdout else (np.arange(len(data.ids)), None)
    provenance = {
        "split": {"holdout": holdout, "test_fraction": test_fraction, "seed": seed},
        "query_ids": [str(data.ids[i]) for i in rows],
        "data_args": {k: str(v) for k, v in data_args.items() if v is not None},
    }
    reference = fit_reference(data.rows(rows), loaded.x[rows], loaded.embedder, spec, diversity=diversity,
                              labels=labels, provenance=provenance)
    reference.save(out)
    return reference


def compare_selectors(artifact: str | Path, source: str | Path, ks: list[int], *, draws: int = 20,
                      **data_args: Any) -> Comparison:
    """Replay the reference at `artifact` and the baselines on the held-out split it was built without."""
    reference = Reference.load(artifact)
    training = reference.meta["training"]
    split = training.get("split", {})
    if not split.get("holdout"):
        raise ConfigError(f"{artifact}: built from every query (no held-out split); build it with the default split to compare")
    loaded = embed_data(source, reference.meta["embedder"]["spec"], **(training.get("data_args", {}) | data_args))
    data = loaded.data
    train, test = data.split(float(split["test_fraction"]), int(split["seed"]))
    if data.rows(train).fingerprint() != training["hash"]:
        raise ConfigError(f"{artifact}: built from other data than {source} gives under its split (data hash differs); "
                          "held-out queries could be among its reference queries, so it is not compared")
    return compare(reference, data, loaded.x, train, test, ks, draws=draws, seed=int(split["seed"]))


def compare(reference: Reference, data: RoutingData, x: np.ndarray, train: np.ndarray, test: np.ndarray,
            ks: list[int], *, draws: int = 20, seed: int = 0) -> Comparison:
    """Every method of METHODS at every k in `ks`, on the `test` rows (the reference holds no test row)."""
    m = len(data.proposers)
    if not ks or min(ks) < 1 or max(ks) > m:
        raise ConfigError(f"k must be between 1 and the pool's {m} proposers, not {ks}")
    column = np.argsort(reference.align(data.proposers))  # reference index -> data column
    te = data.rows(test)
    accuracy = np.nanmean(data.rows(train).success, axis=0)
    by_accuracy = [int(j) for j in np.argsort(-accuracy, kind="stable")]
    by_pool = [int(column[j]) for j in np.argsort(-reference.arrays["pool_agree"], kind="stable")]
    diversity = float(reference.meta["defaults"]["diversity"])
    rng = np.random.default_rng(seed)
    choices = []
    for k in ks:
        subsets = {
            "diverse": [[int(column[j]) for j in reference.choose(x[i], k=k, diversity=diversity)] for i in test],
            "top-k": [[int(column[j]) for j in reference.choose(x[i], k=k, diversity=0.0)] for i in test],
            "top-k-train": [by_accuracy[:k]] * len(test),
        }
        for method, chosen in subsets.items():
            choices.append(_choice(method, k, te, [chosen]))
        drawn = [[sorted(rng.choice(m, k, replace=False), key=by_pool.index) for _ in test] for _ in range(draws)]
        choices.append(_choice("random-k", k, te, drawn))
    return Comparison([str(i) for i in te.ids], len(train), choices)


def ratio_interval(runs: list[Comparison], metric: str, method: str, baseline: str, k: int, *,
                   draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(metric of method) / mean(metric of baseline) at k over every comparison's held-out
    queries, with a 95% paired bootstrap interval that resamples questions (a question held out in
    several splits moves as one): (ratio, low, high). `metric`: vote, any_right or usd."""
    ids = [qid for r in runs for qid in r.test_ids]
    a = np.concatenate([getattr(r.get(method, k), metric) for r in runs])
    b = np.concatenate([getattr(r.get(baseline, k), metric) for r in runs])
    index = {q: i for i, q in enumerate(dict.fromkeys(ids))}
    group = np.array([index[q] for q in ids])
    sum_a, sum_b = (np.bincount(group, weights=w, minlength=len(index)) for w in (a, b))
    pick = np.random.default_rng(seed).integers(0, len(index), (draws, len(index)))
    boot = sum_a[pick].sum(axis=1) / np.maximum(sum_b[pick].sum(axis=1), 1e-12)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(a.sum() / max(b.sum(), 1e-12)), float(low), float(high)


def _choice(method: str, k: int, te: RoutingData, draws: list[list[list[int]]]) -> Choice:
    """Mean over `draws` (each one subset per test row) of vote, any-right and $."""
    y = np.nan_to_num(te.success)
    vote = np.mean([vote_routed(te.answers, te.success, subsets) for subsets in draws], axis=0)
    right = np.mean([[y[i, s].max() for i, s in enumerate(subsets)] for subsets in draws], axis=0)
    usd = np.mean([[np.nansum(te.cost[i, s]) for i, s in enumerate(subsets)] for subsets in draws], axis=0)
    return Choice(method, k, vote.astype(float), right.astype(float), usd.astype(float))
