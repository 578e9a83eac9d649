"""The search space: which topologies a study may try, as data, and the one place that turns it into
Optuna's define-by-run calls. Conditional parameters are asked only where they apply."""

from __future__ import annotations

import functools
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from moa_lab.selection import Router
from moa_lab.topology import AgentSpec, CascadeSpec, LayerSpec, SelectorSpec, TopologySpec


class RouterKnobs(BaseModel):
    """A trained router's knobs for a study: λ (quality points per dollar, searched on a log scale)
    and the subset size limit k."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    path: str
    lam: tuple[float, float] = (1.0, 1e5)
    k: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _check(self) -> RouterKnobs:
        if not 0 < self.lam[0] <= self.lam[1]:
            raise ValueError("router.lam is [min, max] with 0 < min <= max")
        if self.k is not None and not 1 <= self.k[0] <= self.k[1]:
            raise ValueError("router.k is [min, max] with 1 <= min <= max")
        return self


class CascadeKnobs(BaseModel):
    """A cascade on layer 1 for a study (`moa_lab.topology.CascadeSpec`): the agreement `threshold`
    searched in [min, max], and the first stage's size in `first` [min, max] (capped below the
    layer's width; the rest of the layer is the last stage). With `optional`, a trial may also run
    without a cascade, so the study compares both; `exits` lists the choices of the cascade's exit
    (asked only where a later layer or a model aggregator could be skipped)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    threshold: tuple[float, float] = (0.5, 1.0)
    first: tuple[int, int] = (2, 3)
    measure: Literal["share", "margin", "similarity"] = "share"
    optional: bool = True
    exits: tuple[bool, ...] = (False,)

    @model_validator(mode="after")
    def _check(self) -> CascadeKnobs:
        if not 0 <= self.threshold[0] <= self.threshold[1] <= 1:
            raise ValueError("cascade.threshold is [min, max] with 0 <= min <= max <= 1")
        if not 2 <= self.first[0] <= self.first[1]:
            raise ValueError("cascade.first is [min, max] with 2 <= min <= max (agreement needs two answers)")
        if not self.exits:
            raise ValueError("cascade.exits lists at least one choice (true, false)")
        return self


class SearchSpace(BaseModel):
    """What a study searches over.

    `pool` models may be proposers; `layers` is the range of proposer layers (the aggregator comes
    on top); each layer uses a subset of the pool of a size within `proposers`; the aggregator is one
    of `aggregators` (`vote` makes no call; `rank` and `synthesize` use one of `aggregator_models`).
    With `self_moa`, a study may also pick one pool model sampled k times. With `router`, a study
    tunes a trained router's λ and k over the router's own pool instead (and `pool` may be empty).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    pool: tuple[str, ...] = ()
    layers: tuple[int, int] = (1, 1)
    proposers: tuple[int, int] | None = None
    """Proposers per layer as [min, max] (default: 1 to the pool size)."""
    aggregators: tuple[Literal["vote", "rank", "synthesize"], ...] = ("vote",)
    aggregator_models: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (0.7,)
    max_tokens: tuple[int, ...] = (512,)
    self_moa_k: tuple[int, int] | None = None
    extractor: str = "normalized"
    router: RouterKnobs | None = None
    """Tune a learned router instead of fixed subsets: layer 1 is the router's pool, voted."""
    cascade: CascadeKnobs | None = None
    """Also search a cascade on layer 1: its threshold and first stage (and its exit)."""

    @property
    def proposer_range(self) -> tuple[int, int]:
        return self.proposers or (1, len(self.pool))

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        if self.router is not None:
            return self
        if not self.pool:
            raise ValueError("pool needs at least one model (or give a router)")
        lo, hi = self.layers
        if not 1 <= lo <= hi <= 4:
            raise ValueError("layers is [min, max] within 1..4")
        plo, phi = self.proposer_range
        if not 1 <= plo <= phi <= len(self.pool):
            raise ValueError(f"proposers is [min, max] within 1..{len(self.pool)} (the pool size)")
        if any(a != "vote" for a in self.aggregators) and not self.aggregator_models:
            raise ValueError("rank and synthesize aggregators need aggregator_models")
        return self


class Trial(Protocol):
    """The part of optuna.Trial the space uses (so tests can pass optuna's FixedTrial)."""

    def suggest_int(self, name: str, low: int, high: int) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


def suggest(trial: Trial, space: SearchSpace) -> TopologySpec:
    """Sample one topology from the space, independent of any task (a study over built-in tasks
    binds it to each task with `moa_lab.topology.for_task`; the same parameters give the same spec)."""
    if space.router is not None:
        spec = _routed(trial, space.router, space.extractor)
        if space.cascade is None:
            return spec
        cascade = cascade_of(trial, space.cascade, len(spec.layers[0].proposers), space.extractor, False)
        return spec.model_copy(update={"layers": (spec.layers[0].model_copy(update={"cascade": cascade}),)})
    temperature = _pick(trial, "temperature", space.temperatures)
    max_tokens = _pick(trial, "max_tokens", space.max_tokens)
    family = "moa"
    if space.self_moa_k is not None:
        family = trial.suggest_categorical("family", ["moa", "self-moa"])
    if family == "self-moa":
        model = trial.suggest_categorical("self_moa.model", list(space.pool))
        k = trial.suggest_int("self_moa.k", *space.self_moa_k)  # type: ignore[misc]
        layers = [[model] * k]
    else:
        n_layers = trial.suggest_int("layers", *space.layers)
        layers = []
        for i in range(n_layers):
            layers.append(subset(trial, f"layer{i}", space.pool, space.proposer_range))
    kind = _pick(trial, "aggregator", space.aggregators)
    width = len(layers[-1])
    if width == 1 and len(layers) == 1:
        aggregator = None
    elif kind == "vote":
        aggregator = AgentSpec(agent="vote", extractor=space.extractor)
    else:
        model = _pick(trial, "aggregator.model", space.aggregator_models)
        extra = {"temperature": temperature} if kind == "synthesize" else {}
        aggregator = AgentSpec(agent=kind, model=model, max_tokens=max_tokens, **extra)
    specs = tuple(
        LayerSpec(proposers=tuple(AgentSpec(agent="plain", model=m, temperature=temperature, max_tokens=max_tokens) for m in layer))
        for layer in layers
    )
    if space.cascade is not None:
        skippable = len(layers) > 1 or (aggregator is not None and aggregator.agent != "vote")
        cascade = cascade_of(trial, space.cascade, len(layers[0]), space.extractor, skippable)
        specs = (specs[0].model_copy(update={"cascade": cascade}), *specs[1:])
    return TopologySpec(name=f"trial-{getattr(trial, 'number', 0)}", layers=specs, aggregator=aggregator)


def cascade_of(trial: Trial, knobs: CascadeKnobs, width: int, extractor: str, skippable: bool) -> CascadeSpec | None:
    """Layer 1's cascade for this trial, or None (no cascade drawn, or a layer of one proposer).
    A first stage drawn at or above the layer's width leaves one stage: agreement is then read only
    for the exit, and without an exit that is no cascade at all."""
    if width < 2 or (knobs.optional and not trial.suggest_categorical("cascade", [True, False])):
        return None
    first = knobs.first[0] if knobs.first[0] == knobs.first[1] else trial.suggest_int("cascade.first", *knobs.first)
    threshold = trial.suggest_float("cascade.threshold", *knobs.threshold) if knobs.threshold[0] < knobs.threshold[1] else knobs.threshold[0]
    exit = _pick(trial, "cascade.exit", knobs.exits) if skippable else False
    stages = (first,) if first < width else ()
    if not stages and not exit:
        return None
    return CascadeSpec(stages=stages, threshold=threshold, measure=knobs.measure, extractor=extractor, exit=exit)


def subset(trial: Trial, prefix: str, pool: tuple[str, ...], sizes: tuple[int, int]) -> list[str]:
    """A subset of `pool`: its size first (uniform over `sizes`), then its members as the `size`
    highest of one weight in [0, 1] per pool model (ties by pool order), in pool order.

    Every size and every subset of it is reachable; with independent weights each subset of a
    size is equally likely, and a sampler can learn both which sizes and which models pay off."""
    size = sizes[0] if sizes[0] == sizes[1] else trial.suggest_int(f"{prefix}.size", *sizes)
    if size == len(pool):
        return list(pool)
    weight = {m: trial.suggest_float(f"{prefix}.w.{m}", 0.0, 1.0) for m in pool}
    chosen = set(sorted(pool, key=lambda m: (-weight[m], pool.index(m)))[:size])
    return [m for m in pool if m in chosen]


def subset_params(prefix: str, pool: tuple[str, ...], sizes: tuple[int, int], members: list[str]) -> dict[str, Any]:
    """The parameters under which `subset` draws exactly `members` (for enqueued baselines)."""
    if not sizes[0] <= len(members) <= sizes[1]:
        raise ValueError(f"{len(members)} proposers is outside the space's range {list(sizes)}")
    out: dict[str, Any] = {} if sizes[0] == sizes[1] else {f"{prefix}.size": len(members)}
    if len(members) < len(pool):
        out |= {f"{prefix}.w.{m}": 1.0 if m in members else 0.0 for m in pool}
    return out


def single_spec(space: SearchSpace, model: str) -> TopologySpec:
    """`model` alone, as `suggest` draws it with the space's first temperature and max_tokens."""
    import optuna

    params: dict[str, Any] = {"family": "moa", "layers": 1, "temperature": space.temperatures[0],
                              "max_tokens": space.max_tokens[0], "aggregator": space.aggregators[0]}
    params |= subset_params("layer0", space.pool, space.proposer_range, [model])
    if space.aggregator_models:
        params["aggregator.model"] = space.aggregator_models[0]
    return suggest(optuna.trial.FixedTrial(params), space).model_copy(update={"name": model.split("/")[-1]})


def _routed(trial: Trial, knobs: RouterKnobs, extractor: str) -> TopologySpec:
    """The router's whole pool in layer 1, a learned selector with this trial's λ and k, a vote."""
    pool = _router_pool(knobs.path)
    selector: dict[str, Any] = {"kind": "learned", "path": knobs.path,
                                "lam": trial.suggest_float("router.lam", *knobs.lam, log=True)}
    if knobs.k is not None:
        selector["k"] = trial.suggest_int("router.k", *knobs.k)
    return TopologySpec(
        name=f"trial-{getattr(trial, 'number', 0)}",
        layers=(LayerSpec(proposers=tuple(AgentSpec(**p) for p in pool)),),
        aggregator=AgentSpec(agent="vote", extractor=extractor),
        selector=SelectorSpec(**selector),
    )


@functools.cache
def _router_pool(path: str) -> tuple[dict[str, Any], ...]:
    return tuple(Router.load(path).proposers)


def _pick(trial: Trial, name: str, choices: tuple[Any, ...]) -> Any:
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))
