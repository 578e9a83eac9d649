"""The two extension points, the context agents call models through, and their decorators."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from moa_lab.core import Answer, CallRecord, Exchange, Message, Proposal, Request, Sampling
from moa_lab.models import Admission, ModelSet
from moa_lab.registry import register

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AgentContext:
    """What an agent may use for one query: the models, the previous layer's proposals, and the
    call list of the query's trace (every call made through `call` is recorded there)."""

    models: ModelSet
    calls: list[CallRecord]
    agent: str = ""
    layer: int = 0
    sample_index: int = 0
    references: Sequence[Proposal] = field(default_factory=tuple)
    history: Sequence[Exchange] = field(default_factory=tuple)
    """Earlier exchanges of this conversation (the second turn of MT-Bench)."""
    budget: Admission | None = None
    """The query's admission every call draws from (None: the ModelSet's budget, if any)."""
    probe: Callable[[AgentContext, str, Request], CallRecord] | None = None
    """Set while a query's worst case is planned: calls go to it instead of a model."""
    stage: int = 0
    """The stage of a cascaded layer this agent runs in (0: the layer has no cascade)."""

    async def call(
        self, model: str, messages: tuple[Message, ...], sampling: Sampling, *, prompt: str | None = None
    ) -> CallRecord:
        """Call a model through the shared wrapper (cache, budget, limits, retry) and trace it."""
        if self.probe is not None:
            record = self.probe(self, model, Request(self.models.get(model).name, messages, sampling, prompt, self.sample_index))
        else:
            record = await self.models.get(model).call(
                messages, sampling, prompt=prompt, sample_index=self.sample_index, agent=self.agent, layer=self.layer,
                budget=self.budget, stage=self.stage,
            )
        self.calls.append(record)
        return record


@runtime_checkable
class Proposer(Protocol):
    """Turns a query (and, after layer 1, the previous layer's proposals in `ctx.references`)
    into a proposal."""

    async def propose(self, query: str, ctx: AgentContext) -> Proposal: ...


@runtime_checkable
class Aggregator(Protocol):
    """Turns a query and the last layer's proposals into the final answer."""

    async def aggregate(self, query: str, proposals: Sequence[Proposal], ctx: AgentContext) -> Answer: ...


def proposer(name: str | None = None) -> Callable[[F], F]:
    """Register a proposer factory: `@proposer("plain") def plain(model: str, ...) -> Proposer`."""
    return register("proposer", name)


def aggregator(name: str | None = None) -> Callable[[F], F]:
    """Register an aggregator factory: `@aggregator("vote") def vote(...) -> Aggregator`."""
    return register("aggregator", name)


def extractor(name: str | None = None) -> Callable[[F], F]:
    """Register an answer extractor factory for votes: it returns a `(text) -> key` function ("" when
    the text states no answer), such as a `moa_lab.answers.Extractor`; equal keys are one answer."""
    return register("extractor", name)
