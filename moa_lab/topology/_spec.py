"""`TopologySpec`: a frozen, serialisable description of a layered MoA (names and numbers only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator


class AgentSpec(BaseModel):
    """A registered agent and the arguments to build it with: `{agent: plain, model: local, temperature: 0.7}`.

    Arguments other than `agent` are checked against the factory's signature when the topology is
    built (unknown names get "did you mean").
    """

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    agent: str = "plain"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def label(self) -> str:
        model = self.args.get("model")
        return f"{self.agent}({model})" if model else self.agent


class CascadeSpec(BaseModel):
    """A layer's proposers called in stages, stopping when their answers agree:
    `{stages: [2, 4], threshold: 0.75}` calls the first 2 proposers and stops if they agree (1.0),
    else calls proposers 3 and 4 and stops if 3 of the 4 agree (0.75), else calls the rest. The stages
    are the number of proposers called by the end of each stage but the last, which always ends
    with the whole layer (in layer 1: every proposer the selector chose, in its order; put the
    cheapest first). Without `stages` the layer is one stage (for `exit` alone).

    `measure` is how agreement is read (`moa_lab.answers.agreement`): `share` of answers in the
    plurality or its `margin` over the runner-up, both of the answers `extractor` reads, or the
    mean pairwise `similarity` of open-ended answers (chrF, or the cosine of their embeddings by
    `embedder`, a registered embedder such as `minilm` or `hash`). With `exit`, a layer that ends
    agreeing also ends the topology: the answer is the plurality's first answer (the medoid for
    `similarity`), and later layers and the aggregator are not called.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    stages: tuple[int, ...] = ()
    threshold: float = Field(1.0, ge=0.0, le=1.0)
    measure: Literal["share", "margin", "similarity"] = "share"
    extractor: str = "exact"
    embedder: str | None = None
    exit: bool = False

    @model_validator(mode="after")
    def _check(self) -> CascadeSpec:
        if any(n < 2 for n in self.stages):
            raise ValueError("cascade stages count proposers called so far; each needs at least 2 (one answer agrees with nothing)")
        if list(self.stages) != sorted(set(self.stages)):
            raise ValueError(f"cascade stages must increase, not {list(self.stages)}")
        if self.embedder is not None and self.measure != "similarity":
            raise ValueError("cascade embedder is for measure: similarity")
        return self

    def bounds(self, width: int) -> list[int]:
        """How many of `width` proposers are called by the end of each stage: the stages below
        `width`, then `width`."""
        return [n for n in self.stages if n < width] + [width]


class LayerSpec(BaseModel):
    """The proposers of one layer; they run concurrently (stage by stage with a `cascade`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    proposers: tuple[AgentSpec, ...] = Field(min_length=1)
    cascade: CascadeSpec | None = None

    @model_serializer(mode="wrap")
    def _without_absent_cascade(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a layer without a cascade serialises as before cascades existed, so the specs that
        # RunLogs, studies and caches stored still compare equal to the same topology today
        data = handler(self)
        if isinstance(data, dict) and data.get("cascade", ...) is None:
            data.pop("cascade")
        return data

    @model_validator(mode="after")
    def _stages_fit(self) -> LayerSpec:
        if self.cascade is not None and self.cascade.stages and self.cascade.stages[-1] > len(self.proposers):
            raise ValueError(f"cascade stage {self.cascade.stages[-1]} is more proposers than the layer's {len(self.proposers)}")
        return self


class SelectorSpec(BaseModel):
    """A registered selector choosing each query's layer-1 proposers: `{kind: first-k, k: 3}`."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

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

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

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
