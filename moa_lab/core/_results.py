"""Value types that flow through a run: samples, calls, proposals, answers, scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moa_lab.core._messages import Message, Usage


@dataclass(frozen=True)
class Sample:
    """One benchmark item: the query text, an optional gold target and free-form metadata."""

    input: str
    target: str | None = None
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cost:
    """Money and compute spent: US dollars at list price and an estimate of FLOPs."""

    usd: float = 0.0
    flops: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.usd + other.usd, self.flops + other.flops)


@dataclass(frozen=True)
class CallRecord:
    """One model call as the trace keeps it. `error` is set (and `output` empty) when it failed."""

    agent: str
    model: str
    messages: tuple[Message, ...]
    output: str
    usage: Usage
    cost: Cost
    latency_s: float
    cached: bool
    attempts: int = 1
    error: str | None = None
    layer: int = 0
    started: float = 0.0
    """Unix time the call began (for trace spans)."""
    list_usd: float = 0.0
    """What the call costs at list price, paid or not (a cache hit pays nothing but keeps this)."""
    list_latency_s: float = 0.0
    """How long the endpoint took when the call was made (a cache hit keeps the original's)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "model": self.model,
            "layer": self.layer,
            "messages": [m.to_dict() for m in self.messages],
            "output": self.output,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost.usd,
            "list_cost_usd": self.list_usd,
            "list_latency_s": self.list_latency_s,
            "flops": self.cost.flops,
            "latency_s": self.latency_s,
            "cached": self.cached,
            "attempts": self.attempts,
            "error": self.error,
            "started": self.started,
        }


@dataclass(frozen=True)
class Proposal:
    """One agent's answer inside a layer, or the error that stopped it."""

    agent: str
    text: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Answer:
    """The final answer of a topology for one query."""

    text: str
    agent: str
    chosen: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Score:
    """How good an answer is: a value in [0, 1] (or a judge scale) with an explanation."""

    value: float
    explanation: str = ""
