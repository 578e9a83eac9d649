"""The `search:` section of an experiment, validated, and where a study keeps its files."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment, SplitSpec
from moa_lab.search._space import SearchSpace
from moa_lab.topology import validate


Objective = Literal["quality", "usd", "latency", "tokens", "flops"]
COLUMNS = {"quality": "quality", "usd": "cost_per_query_usd", "latency": "latency_p50_s",
           "tokens": "tokens_per_query", "flops": "flops_per_query"}
"""Each objective's key in a trial's values."""


class SearchConfig(BaseModel):
    """The `search:` section of an experiment: the space and how to search it."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    space: SearchSpace
    trials: int = Field(30, ge=1)
    mode: Literal["pareto", "penalty"] = "pareto"
    """`pareto`: the front of `objectives`; `penalty`: maximise quality - cost_penalty x $ per query."""
    objectives: tuple[Objective, ...] = ("quality", "usd")
    """What the front trades off: `quality` (up) and any of `usd` ($ per query at list price),
    `latency` (p50 critical path, only on endpoints that measure it), `tokens` and `flops` per query (down)."""
    holdout: float | None = Field(None, gt=0, lt=1)
    """This share of every group's samples (seeded by `seed`) is never seen by the study; `moa-lab
    pareto` re-evaluates the front on it."""
    cost_penalty: float = 100.0
    budget_usd: float | None = Field(None, ge=0)
    max_cost_per_query: float | None = Field(None, ge=0)
    """A trial constraint: topologies dearer than this per query are infeasible."""
    seed: int = 0
    subsample: int | None = Field(None, ge=1)
    """Staged fidelity: every trial first runs on this many samples per group; only trials whose
    quality reaches the `promote` quantile of earlier trials' first-stage quality run on all."""
    promote: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.objectives[:1] != ("quality",) or len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives starts with quality and names each objective once, e.g. [quality, usd]")
        return self

    def split(self, part: Literal["search", "holdout"] = "search") -> SplitSpec | None:
        """The benchmark split the study runs on (`search`), or the one it keeps back; a router
        study leaves out the questions its router was trained on."""
        trained = _trained_on(self.space.router.path) if self.space.router is not None else ()
        if not self.holdout and not trained:
            return None
        return SplitSpec(holdout=self.holdout or 0.0, seed=self.seed, part=part, exclude=trained)


def search_config(exp: Experiment) -> SearchConfig:
    """The experiment's validated `search:` section (a router's path made relative to the file)."""
    if exp.spec.search is None:
        raise ConfigError(f"{exp.source}: `moa-lab search` needs a search: section")
    config = validate(SearchConfig, exp.spec.search, source=exp.source, prefix="search")
    if config.holdout is not None and exp.spec.benchmark is None:
        raise ConfigError(f"{exp.source}: search.holdout splits a benchmark: give benchmark (not inline queries)")
    if "latency" in config.objectives:
        replayed = [m for m in (*config.space.pool, *config.space.aggregator_models)
                    if (ep := exp.endpoints().get(m.split("/", 1)[0])) is not None and ep.kind == "replay"]
        if replayed or config.space.router is not None:
            raise ConfigError(f"{exp.source}: search.objectives has latency, but {(replayed or ['the router pool'])[0]} may be "
                              "replayed: a replay measures this machine, not an endpoint, so latency cannot be an objective")
    router = config.space.router
    if router is None:
        return config
    # a router's path is relative to the experiment file, like every other path in it
    space = config.space.model_copy(update={"router": router.model_copy(update={"path": str(exp.path(router.path))})})
    return config.model_copy(update={"space": space})


@functools.cache
def _trained_on(path: str) -> tuple[str, ...]:
    """The sample ids a router artifact was trained on (it lists them since it is written)."""
    from moa_lab.selection import Router

    ids = Router.load(path).meta.get("training", {}).get("query_ids")
    if ids is None:
        raise ConfigError(f"{path}: the router does not list the questions it was trained on, so a study could score on "
                          "them; train it again (`moa-lab router train`) to tune it")
    return tuple(ids)


def search_split(exp: Experiment, config: SearchConfig, part: Literal["search", "holdout"] = "search") -> Experiment:
    """`exp` restricted to the side of the study's holdout split that `part` names (as is without a holdout)."""
    split = config.split(part)
    if split is None or exp.spec.benchmark is None:
        return exp
    bench = exp.spec.benchmark.model_copy(update={"split": split})
    return Experiment(exp.spec.model_copy(update={"benchmark": bench}), exp.folder, exp.source)


def study_dir(exp: Experiment) -> Path:
    """The study's folder: trial RunLogs, the journal and the budget ledger of the default storage."""
    return exp.output_dir() / exp.spec.name / "study"
