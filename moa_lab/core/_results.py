"""Value types that flow through a run: samples, calls, proposals, answers, scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moa_lab.core._messages import Message, Request, Sampling, Usage


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of a conversation: what the user asked and what the assistant answered."""

    user: str
    assistant: str


@dataclass(frozen=True)
class Sample:
    """One benchmark item: the query text, an optional gold target, the earlier turns of its
    conversation (multi-turn benchmarks) and free-form metadata."""

    input: str
    target: str | None = None
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    history: tuple[Exchange, ...] = ()


@dataclass(frozen=True)
class Cost:
    """What calls cost, in one meaning everywhere.

    `paid_usd` is what was charged against the budget: the list price of a call that reached an
    endpoint (replayed calls included, so studies over recordings meter like live ones), 0 for a
    cache hit or a failure. `list_usd` is the call's list price whether paid or not: the price of
    the topology. `flops` estimates compute (2 x parameters x tokens). Totals are sums of Costs.
    """

    paid_usd: float = 0.0
    list_usd: float = 0.0
    flops: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.paid_usd + other.paid_usd, self.list_usd + other.list_usd, self.flops + other.flops)


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
    list_latency_s: float = 0.0
    """How long the endpoint took when the call was made (a cache hit keeps the original's)."""
    sampling: Sampling | None = None
    """The call's sampling settings (None in RunLogs written before they were kept)."""
    sample_index: int | None = None
    """Which of several identical requests of one layer this was (Self-MoA), as in `Request`."""
    prompt_form: bool | None = None
    """True when `messages[0].content` was sent as a raw completion-style prompt (`Request.prompt`),
    False for a chat request. With `sampling` and `sample_index` it makes the call replayable
    (`moa-lab record export`); all three are None in RunLogs written before they were kept."""

    @property
    def request(self) -> Request | None:
        """The request this call made (model name without its endpoint), or None when the RunLog
        did not keep enough of it (written before sampling and sample index were recorded)."""
        if self.sampling is None or self.sample_index is None or self.prompt_form is None:
            return None
        name = self.model.partition("/")[2] or self.model
        if self.prompt_form:
            return Request(name, (), self.sampling, self.messages[0].content, self.sample_index)
        return Request(name, self.messages, self.sampling, None, self.sample_index)
    stage: int = 0
    """The stage of a cascaded layer the call was made in (1, 2, ...); 0 in a layer without a cascade."""


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
class Stage:
    """One stage of a cascaded layer: how many proposals the layer held after it, how much their
    answers agreed, whether that reached the cascade's threshold (then no later stage was called),
    and whether the topology answered right there (`exited`: later layers and the aggregator were
    skipped)."""

    layer: int
    stage: int
    proposals: int
    agreement: float
    agreed: bool
    exited: bool = False


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
