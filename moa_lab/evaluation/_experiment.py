"""Experiment files: topologies, samples, scorer, endpoints, prices, budget, cache, tracking and output, validated."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moa_lab.benchmarks import DATA_PREFIX, find_data
from moa_lab.core import ConfigError, default_cache_dir
from moa_lab.models import Budget, EndpointConfig, LedgerBudget, MemoryCache, ModelSet, PriceTable, RedisCache, SqliteCache
from moa_lab.registry import lookup
from moa_lab.topology import SelectorSpec, TopologySpec, load_topology, read_yaml, validate


class BudgetSpec(BaseModel):
    """A hard cap for the run, in US dollars and/or tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    usd: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)


class SplitSpec(BaseModel):
    """A seeded split of every group's samples: the `exclude`d ids are left out (e.g. the questions
    a router was trained on), then `holdout` of the rest (by a hash of seed and sample id, so the
    split does not depend on sample order) are held out; `part` says which side to run."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    holdout: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    part: Literal["search", "holdout"] = "search"
    exclude: tuple[str, ...] = ()


class BenchmarkSpec(BaseModel):
    """What to evaluate on: `builtin` tasks, `gsm8k`, `alpaca_eval`, `mt_bench` or `jsonl`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kind: Literal["builtin", "gsm8k", "alpaca_eval", "mt_bench", "jsonl"]
    path: str | None = None
    tasks: list[str] | None = None
    items: int = Field(40, ge=1)
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    split: SplitSpec | None = None
    """Run only one side of a seeded search/held-out split (what `moa-lab search` writes out)."""


class TrackingSpec(BaseModel):
    """Where runs are logged. MLflow defaults to the project's `mlruns/mlflow.db`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mlflow: bool = True
    tracking_uri: str | None = None
    experiment: str | None = None
    traces: bool | int = 25
    """MLflow traces (one span per agent call) for the first N queries of each run, `true` for all,
    `false` for none. Every query is in the run's table either way; a trace costs about 40 ms on a
    local sqlite store, so the default keeps logging a small share of the run."""


class ExperimentSpec(BaseModel):
    """One experiment file. Relative paths are relative to the file's folder.

    `moa-lab run` and `moa-lab eval` run the same thing: every topology (`topology`, or
    `topologies` by label) on the samples of `queries` (inline) or `benchmark`, scored by `scorer`
    when the samples have targets. `moa-lab search` reads `search`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    description: str = ""
    topology: str | dict[str, Any] | None = None
    topologies: dict[str, str | dict[str, Any]] | None = None
    queries: list[str | dict[str, Any]] | None = None
    """Inline samples: strings, or {input, target?, id?} mappings."""
    benchmark: BenchmarkSpec | None = None
    scorer: str | dict[str, Any] = "auto"
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    search: dict[str, Any] | None = None
    """The search space and study settings for `moa-lab search` (validated by `moa_lab.search`)."""
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    prices: dict[str, float | dict[str, Any]] = Field(default_factory=dict)
    """$ per million tokens by model: `{input, output, params_b?}`, or one number for both (`0`: free)."""
    budget: BudgetSpec | None = None
    cache: bool | str = True
    """`true` (the user's sqlite cache), `false`, `memory`, a sqlite path, or `redis://host:port/db`."""
    concurrency: int = Field(8, ge=1, le=4096)
    output: str | None = None
    """Where runs go (default: `runs/` in the experiment's project, see `project_root`)."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dataset" in data:
            raise ValueError("`dataset:` is now `benchmark:` (same kind, path and limit): rename the key")
        return data


class Experiment:
    """A loaded experiment: its spec, its folder, the topology spec and the samples."""

    def __init__(self, spec: ExperimentSpec, folder: Path, source: str = "") -> None:
        self.spec = spec
        self.folder = folder
        self.source = source
        if spec.topology is None and not spec.topologies and spec.search is None:
            raise ConfigError(f"{source}: give a topology (or topologies, or a search space)")
        self.topology: TopologySpec | None = (
            self._resolved(load_topology(self._topology_source(), where=f"{source}: topology"))
            if spec.topology is not None
            else next(iter(self.topologies().values())) if spec.topologies else None
        )

    def topologies(self, task: str | None = None) -> dict[str, TopologySpec]:
        """Every topology by label; a preset taking `task` gets the built-in task it runs on."""
        sources = dict(self.spec.topologies or {})
        if not sources and self.spec.topology is not None:
            sources = {"topology": self.spec.topology}
        out = {}
        for label, source in sources.items():
            if isinstance(source, str) and source.endswith((".yaml", ".yml")):
                source = str(self.path(source))
            if task is not None:
                source = _with_task(source, task)
            out[label] = self._resolved(load_topology(source, where=f"{self.source}: topologies.{label}"))  # type: ignore[arg-type]
        return out

    def _resolved(self, spec: TopologySpec) -> TopologySpec:
        """A selector's artifact `path` is relative to this file, like every other path in it."""
        if spec.selector is None or "path" not in spec.selector.args:
            return spec
        args = spec.selector.args | {"path": str(self.path(str(spec.selector.args["path"])))}
        return spec.model_copy(update={"selector": SelectorSpec(kind=spec.selector.kind, **args)})

    @classmethod
    def load(cls, path: str | Path, *, topology_args: dict[str, Any] | None = None, **overrides: Any) -> Experiment:
        """Read and validate an experiment file; `overrides` replace top-level fields and
        `topology_args` replace arguments of its preset topology."""
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: an experiment file is a mapping (name, topology, queries, ...)")
        data.update({k: v for k, v in overrides.items() if v is not None})
        if topology_args:
            topo = data.get("topology")
            if isinstance(topo, str) and not topo.endswith((".yaml", ".yml")):
                topo = {"preset": topo}
            if not (isinstance(topo, dict) and "preset" in topo):
                raise ConfigError(f"{path}: --arg sets preset arguments, but this topology is not a preset")
            data["topology"] = {**topo, **topology_args}
        spec = validate(ExperimentSpec, data, source=str(path))
        return cls(spec, Path(path).resolve().parent, str(path))

    def _topology_source(self) -> str | dict[str, Any]:
        topo = self.spec.topology
        assert topo is not None
        if isinstance(topo, str) and topo.endswith((".yaml", ".yml")):
            return str(self.path(topo))
        return topo

    @property
    def project(self) -> Path:
        """The experiment's project folder (see `project_root`)."""
        return project_root(self.folder)

    def output_dir(self) -> Path:
        """Where this experiment's runs go: `output:`, else `runs/` in its project."""
        return self.path(self.spec.output) if self.spec.output is not None else self.project / "runs"

    def path(self, value: str) -> Path:
        """A path in the file: relative to its folder, or `data:NAME/...`, a dataset's file found in
        the data folders (raises DataMissing, naming the pull command, when it is in none)."""
        if value.startswith(DATA_PREFIX):
            return find_data(value, self.project)
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.folder / p

    def endpoints(self) -> dict[str, EndpointConfig]:
        """Endpoint configs with replay paths made absolute."""
        out = {}
        for name, config in self.spec.endpoints.items():
            if config.kind == "replay":
                config = config.model_copy(
                    update={
                        "paths": tuple(str(self.path(p)) for p in config.paths),
                        "questions": str(self.path(config.questions)) if config.questions else None,
                    }
                )
            out[name] = config
        return out

    def model_set(
        self, *, cache_dir: Path | None = None, use_cache: bool | None = None, budget: Budget | LedgerBudget | None = None,
        run: Path | None = None, replay: Path | None = None,
    ) -> ModelSet:
        """The ModelSet this experiment runs on: its endpoints, prices, budget and cache. `budget`
        replaces the file's (a study's shared ledger, a command line cap). With `run` (a run
        folder) the file's budget is a durable ledger, `budget.sqlite` beside the run's RunLogs: a
        resumed run starts from what was spent, and what a killed process held counts as spent.
        With `replay` (a recording folder, `moa-lab record export`) every call is answered from
        the recording, not by an endpoint, and the call cache is off (it may hold other answers)."""
        cache_dir = cache_dir or default_cache_dir()
        prices = PriceTable.default()
        if self.spec.prices:
            prices = prices.merged(PriceTable.from_mapping(self.spec.prices, where=f"{self.source}: prices"))
        cache_setting = self.spec.cache if use_cache is None else use_cache
        if replay is not None:
            cache_setting = False
        cache = None
        if cache_setting is True:
            cache = SqliteCache(cache_dir / "calls.sqlite")
        elif isinstance(cache_setting, str) and cache_setting.startswith("redis://"):
            cache = RedisCache(cache_setting)
        elif isinstance(cache_setting, str):
            cache = SqliteCache(self.path(cache_setting)) if cache_setting != "memory" else MemoryCache()
        if budget is None and self.spec.budget is not None:
            if run is not None:
                budget = LedgerBudget(f"sqlite:///{run / 'budget.sqlite'}", "run", self.spec.budget.usd, self.spec.budget.tokens)
            else:
                budget = Budget(self.spec.budget.usd, self.spec.budget.tokens)
        recording = None
        if replay is not None:
            from moa_lab.models.providers.replay import ReplayClient

            recording = ReplayClient([replay])
        return ModelSet(
            self.endpoints(), prices=prices, cache=cache, budget=budget, cache_dir=cache_dir, local_slots=self.width(),
            replay=recording,
        )

    def width(self) -> int:
        """The widest layer of any topology: the embedded server's slot count."""
        if self.spec.topologies:
            return max(t.width for t in self.topologies().values())
        return self.topology.width if self.topology is not None else 4


def project_root(start: Path) -> Path:
    """The project a file in `start` belongs to: the nearest folder holding `pyproject.toml`, else
    `start` itself. Runs and the local MLflow store go there, never into an unrelated parent that
    happens to hold `mlruns/`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def _with_task(source: str | dict[str, Any], task: str) -> str | dict[str, Any]:
    """A preset that takes a `task` argument gets the built-in task it is evaluated on."""
    if isinstance(source, str) and not source.endswith((".yaml", ".yml")):
        source = {"preset": source}
    if isinstance(source, dict) and "preset" in source and "task" not in source:
        factory = lookup("topology", str(source["preset"])).factory
        if "task" in inspect.signature(factory).parameters:
            return {**source, "task": task}
    return source
