"""From spec to runnable layers, and from any way a user names a topology to a spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab.agents import Aggregator, Proposer
from moa_lab.core import ConfigError
from moa_lab.registry import build
from moa_lab.topology._io import read_yaml, validate
from moa_lab.topology._presets import preset
from moa_lab.topology._spec import AgentSpec, CascadeSpec, SelectorSpec, TopologySpec


@dataclass(frozen=True)
class Agent:
    """A built agent with the label the trace shows (`L1.2 plain(local)`) and its sample index:
    how many identical specs precede it in its layer, so k identical proposers make k distinct calls."""

    label: str
    spec: AgentSpec
    impl: Any
    sample_index: int


@dataclass(frozen=True)
class Topology:
    """Runnable layers of proposers and the final aggregator, built from a spec."""

    spec: TopologySpec
    layers: tuple[tuple[Agent, ...], ...]
    aggregator: Agent | None


def build_topology(spec: TopologySpec) -> Topology:
    """Build every agent of `spec`; bad agent names or arguments fail with their path in the spec."""
    layers = []
    for i, layer in enumerate(spec.layers):
        built: list[Agent] = []
        for j, agent in enumerate(layer.proposers):
            where = f"layers[{i}].proposers[{j}]"
            impl = build("proposer", agent.agent, agent.args, where=where)
            if not isinstance(impl, Proposer):
                raise ConfigError(f"{where}: {agent.agent!r} did not build a proposer (no async propose method)")
            duplicates = sum(1 for other in layer.proposers[:j] if other == agent)
            built.append(Agent(f"L{i + 1}.{j + 1} {agent.label}", agent, impl, duplicates))
        layers.append(tuple(built))
    aggregator = None
    if spec.aggregator is not None:
        impl = build("aggregator", spec.aggregator.agent, spec.aggregator.args, where="aggregator")
        if not isinstance(impl, Aggregator):
            raise ConfigError(f"aggregator: {spec.aggregator.agent!r} did not build an aggregator")
        aggregator = Agent(f"L{len(layers) + 1} {spec.aggregator.label}", spec.aggregator, impl, 0)
    return Topology(spec, tuple(layers), aggregator)


def with_cascade(spec: TopologySpec, cascade: CascadeSpec | None, *, where: str = "topology") -> TopologySpec:
    """`spec` with every proposer layer in the stages of `cascade` (None: no cascade anywhere)."""
    data = spec.model_dump(mode="json")
    for layer in data["layers"]:
        layer["cascade"] = cascade.model_dump(mode="json") if cascade is not None else None
    return validate(TopologySpec, data, source=where)


def load_topology(source: str | Path | Mapping[str, Any] | TopologySpec, *, where: str = "topology") -> TopologySpec:
    """A spec from a preset name, a YAML file, `{preset: NAME, ...arguments}`, or a full spec mapping.

    Beside `preset:`, `selector:` sets the topology's selector and `cascade:` (a `CascadeSpec`) puts
    every proposer layer in stages."""
    if isinstance(source, TopologySpec):
        return source
    if isinstance(source, Mapping):
        if "preset" in source:
            args = {k: v for k, v in source.items() if k not in ("preset", "selector", "cascade")}
            spec = preset(str(source["preset"]), **args)
            if source.get("selector") is not None:  # any preset can take a selector
                selector = validate(SelectorSpec, dict(source["selector"]), source=f"{where}.selector")
                spec = spec.model_copy(update={"selector": selector})
            if source.get("cascade") is not None:  # and a cascade
                cascade = validate(CascadeSpec, dict(source["cascade"]), source=f"{where}.cascade")
                spec = with_cascade(spec, cascade, where=where)
            return spec
        return validate(TopologySpec, dict(source), source=where)
    text = str(source)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return load_topology(read_yaml(text) or {}, where=text)
    return preset(text)
