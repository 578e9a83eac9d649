"""Generalisation check: train and evaluate on random sub-pools of a recorded pool.

Each sub-pool draws `size` proposers at random (seeded), splits the queries with its own seed, trains a
router on the training part and replays the router, the cascade and the best static subsets on the
held-out part (without the diagnostic sweeps: routing alone, the rule fed true outcomes). What a
sub-pool reports is read from its `RouterEval`, which is written beside it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.routing._evaluate import RouterEval, evaluate_router
from moa_lab.routing._train import TrainConfig, train_router
from moa_lab.routing._workflow import Embedded
from moa_lab.selection import Router


@dataclass(frozen=True)
class Subpool:
    """One sub-pool's held-out result: its proposers, the best single chosen on its training part,
    the curve areas, and each method's $ at the best single's held-out accuracy as a share of the
    best single's $ (None: never that accurate)."""

    index: int
    seed: int
    names: list[str]
    best_single: str
    area_router: float
    area_cascade: float | None
    area_static: float
    router_share: float | None
    cascade_share: float | None
    static_share: float | None

    @property
    def router_wins(self) -> bool:
        """The router's area is at least the best static subsets' (ties: the router fell back to them)."""
        return self.area_router >= self.area_static - 1e-12

    @property
    def cascade_wins(self) -> bool:
        return self.area_cascade is not None and self.area_cascade >= self.area_static - 1e-12

    @classmethod
    def of(cls, index: int, seed: int, names: list[str], result: RouterEval) -> Subpool:
        s = result.summary
        return cls(index, seed, names, s["best_single"]["label"], s["area_router"], s.get("area_cascade"),
                   s["area_static_best"], s["router_cost_ratio_at_best_single_accuracy"],
                   s.get("cascade_cost_ratio_at_best_single_accuracy"), s["static_cost_ratio_at_best_single_accuracy"])


@dataclass(frozen=True)
class SubpoolReport:
    """Every sub-pool's result and the counts the generalisation targets read."""

    pools: list[Subpool]
    size: int

    @property
    def router_wins(self) -> int:
        return sum(p.router_wins for p in self.pools)

    @property
    def cascade_wins(self) -> int:
        return sum(p.cascade_wins for p in self.pools)

    @property
    def cascade_median_share(self) -> float | None:
        """Median over sub-pools of the cascade's $ share at the best single's accuracy, a sub-pool
        where it never gets there counting as infinitely dear."""
        shares = [p.cascade_share if p.cascade_share is not None else float("inf") for p in self.pools]
        return statistics.median(shares) if shares else None

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "pools": [asdict(p) for p in self.pools], "router_wins": self.router_wins,
                "cascade_wins": self.cascade_wins, "cascade_median_share": self.cascade_median_share}


def evaluate_subpools(loaded: Embedded, embedder_spec: dict[str, Any], *, pools: int, size: int, seed: int = 0,
                      test_fraction: float = 0.3, config: TrainConfig | None = None, out: str | Path | None = None,
                      progress: Any = None, reuse: bool = False, only: Sequence[int] | None = None) -> SubpoolReport:
    """Train and evaluate a router on each of `pools` random sub-pools of `size` proposers. With `out`,
    each sub-pool's artifact and eval.json go to `out/poolNN/`, and the report to `out/subpools.json`.
    With `reuse`, a sub-pool whose eval.json is already in `out` (same proposers and split) is read
    from it instead; with `only`, just those sub-pools are done (the draws stay the same)."""
    data = loaded.data
    m = len(data.proposers)
    if not 2 <= size <= m:
        raise ConfigError(f"--size {size}: a sub-pool needs between 2 and {m} proposers (the pool has {m})")
    if pools < 1:
        raise ConfigError(f"--subpools {pools}: give at least one sub-pool")
    rng = np.random.default_rng(seed)
    base = config or TrainConfig()
    results = []
    for i in range(pools):
        columns = sorted(int(j) for j in rng.choice(m, size, replace=False))
        pool, pool_seed = data.columns(columns), seed + i
        if only is not None and i not in only:
            continue
        folder = Path(out) / f"pool{i:02d}" if out is not None else None
        router, stored = _stored(folder, columns, pool_seed, test_fraction) if reuse and folder is not None else (None, None)
        if stored is not None:
            results.append(Subpool.of(i, pool_seed, pool.names, stored))
            if progress is not None:
                progress(results[-1])
            continue
        train_rows, test_rows = pool.split(test_fraction, pool_seed)
        if router is None:
            provenance = {"split": {"holdout": True, "test_fraction": test_fraction, "seed": pool_seed},
                          "subpool": {"index": i, "columns": columns}}
            router = train_router(pool.rows(train_rows), loaded.x[train_rows], loaded.embedder, embedder_spec,
                                  replace(base, seed=pool_seed), provenance=provenance)
            if folder is not None:
                router.save(folder)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            result = evaluate_router(router, pool, loaded.x, train_rows, test_rows, seed=pool_seed, diagnostics=False)
        if folder is not None:
            (folder / "eval.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
        results.append(Subpool.of(i, pool_seed, pool.names, result))
        if progress is not None:
            progress(results[-1])
    report = SubpoolReport(results, size)
    if out is not None and only is None:
        (Path(out) / "subpools.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
    return report


def _stored(folder: Path, columns: list[int], seed: int, test_fraction: float) -> tuple[Router | None, RouterEval | None]:
    """The sub-pool's stored router and evaluation (each None when absent), if `folder` holds this
    very draw and split."""
    if not (folder / "router.json").is_file():
        return None, None
    training = json.loads((folder / "router.json").read_text(encoding="utf-8")).get("training", {})
    if training.get("subpool", {}).get("columns") != columns or training.get("split") != {
            "holdout": True, "test_fraction": test_fraction, "seed": seed}:
        return None, None
    if not (folder / "eval.json").is_file():
        return Router.load(folder), None
    return None, RouterEval.from_dict(json.loads((folder / "eval.json").read_text(encoding="utf-8")))
