"""The `search:` section of an experiment, validated, and where a study keeps its files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment
from moa_lab.search._space import SearchSpace
from moa_lab.topology import validate


class SearchConfig(BaseModel):
    """The `search:` section of an experiment: the space and how to search it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: SearchSpace
    trials: int = Field(30, ge=1)
    mode: Literal["pareto", "penalty"] = "pareto"
    """`pareto`: maximise quality, minimise $ per query and latency; `penalty`: maximise
    quality - cost_penalty x $ per query."""
    cost_penalty: float = 100.0
    budget_usd: float | None = Field(None, ge=0)
    max_cost_per_query: float | None = Field(None, ge=0)
    """A trial constraint: topologies dearer than this per query are infeasible."""
    seed: int = 0
    subsample: int | None = Field(None, ge=1)
    """Staged fidelity: every trial first runs on this many samples per group; only trials whose
    quality reaches the `promote` quantile of earlier trials' first-stage quality run on all."""
    promote: float = Field(0.5, ge=0, le=1)


def search_config(exp: Experiment) -> SearchConfig:
    """The experiment's validated `search:` section (a router's path made relative to the file)."""
    if exp.spec.search is None:
        raise ConfigError(f"{exp.source}: `moa-lab search` needs a search: section")
    config = validate(SearchConfig, exp.spec.search, source=exp.source, prefix="search")
    router = config.space.router
    if router is None:
        return config
    # a router's path is relative to the experiment file, like every other path in it
    space = config.space.model_copy(update={"router": router.model_copy(update={"path": str(exp.path(router.path))})})
    return config.model_copy(update={"space": space})


def study_dir(exp: Experiment) -> Path:
    """The study's folder: trial RunLogs, the journal and the budget ledger of the default storage."""
    return exp.output_dir() / exp.spec.name / "study"
