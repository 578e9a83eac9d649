"""`TopologySpec`: a frozen, serialisable description of a layered MoA (names and numbers only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AgentSpec(BaseModel):
    """A registered agent and the arguments to build it with: `{agent: plain, model: local, temperature: 0.7}`.

    Arguments other than `agent` are checked against the factory's signature when the topology is
    built (unknown names get "did you mean").
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    agent: str = "plain"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def label(self) -> str:
        model = self.args.get("model")
        return f"{self.agent}({model})" if model else self.agent


class LayerSpec(BaseModel):
    """The proposers of one layer; they run concurrently."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proposers: tuple[AgentSpec, ...] = Field(min_length=1)


class SelectorSpec(BaseModel):
    """A registered selector choosing each query's layer-1 proposers: `{kind: first-k, k: 3}`."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = "all"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TopologySpec(BaseModel):
    """Layers of proposers, then one aggregator. In the paper's counting the aggregator is a layer:
    `moa` has 3 layers (two of proposers, then the aggregator), `moa-lite` has 2.

    `on_proposer_error`: `skip` lets later layers and the aggregator proceed with the answers that
    arrived (failures stay in the trace); `fail` fails the query instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    layers: tuple[LayerSpec, ...] = Field(min_length=1)
    aggregator: AgentSpec | None = None
    selector: SelectorSpec | None = None
    on_proposer_error: Literal["skip", "fail"] = "skip"

    @model_validator(mode="after")
    def _needs_aggregator(self) -> TopologySpec:
        if self.aggregator is None and len(self.layers[-1].proposers) > 1:
            raise ValueError("a topology whose last layer has several proposers needs an aggregator")
        return self

    @property
    def width(self) -> int:
        """The widest layer: how many calls may run at once for one query."""
        return max(len(layer.proposers) for layer in self.layers)

    def models(self) -> list[str]:
        """Every model name the topology calls, in order of first use."""
        agents = [a for layer in self.layers for a in layer.proposers] + ([self.aggregator] if self.aggregator else [])
        seen: dict[str, None] = {}
        for agent in agents:
            if isinstance(agent.args.get("model"), str):
                seen.setdefault(agent.args["model"], None)
        return list(seen)
