"""Built-in agents: the plain proposer and the synthesize, rank and vote aggregators."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from moa_lab.agents._agent import AgentContext, aggregator, proposer
from moa_lab.agents._prompts import (
    Example,
    Format,
    Language,
    chat_messages,
    completion_prompt,
    parse_choice,
    to_examples,
)
from moa_lab.answers import majority
from moa_lab.core import Answer, CallRecord, ConfigError, MoaLabError, Proposal, Sampling
from moa_lab.registry import build


class AggregationError(MoaLabError):
    """The aggregator could not produce an answer (for instance: every proposal failed)."""


@dataclass(frozen=True)
class Prompted:
    """A model with its prompt: system prompt or instruction, worked examples, format, sampling."""

    model: str
    system: str | None
    examples: tuple[Example, ...]
    format: Format
    language: Language
    sampling: Sampling

    async def ask(self, query: str, references: Sequence[str], ctx: AgentContext, kind: str = "synthesize") -> CallRecord:
        if self.format == "chat":
            messages = chat_messages(
                query, system=self.system, examples=self.examples, references=references, language=self.language,
                kind=kind, history=ctx.history,
            )
            return await ctx.call(self.model, messages, self.sampling)
        prompt = completion_prompt(
            query, format=self.format, instruction=self.system, examples=self.examples, references=references
        )
        return await ctx.call(self.model, (), self.sampling, prompt=prompt)


def _prompted(
    model: str,
    system: str | None,
    examples: Any,
    format: Format,
    language: Language,
    temperature: float,
    max_tokens: int,
    top_p: float | None,
    seed: int | None,
    stop: Sequence[str] | None,
) -> Prompted:
    if format not in ("chat", "qa", "lines"):
        raise ConfigError(f"format must be chat, qa or lines, not {format!r}")
    if language not in ("en", "ja"):
        raise ConfigError(f"language must be 'en' or 'ja', not {language!r}")
    sampling = Sampling(temperature, max_tokens, top_p, seed, tuple(stop or ()))
    return Prompted(model, system, to_examples(examples), format, language, sampling)


class PlainProposer:
    """Answers the query; after layer 1 it sees the previous answers through the synthesize prompt."""

    def __init__(self, prompted: Prompted) -> None:
        self.prompted = prompted

    async def propose(self, query: str, ctx: AgentContext) -> Proposal:
        references = [p.text for p in ctx.references if p.ok]
        record = await self.prompted.ask(query, references, ctx)
        return Proposal(ctx.agent, record.output.strip(), record.error)


@proposer("plain")
def plain(
    model: str = "local",
    system: str | None = None,
    examples: list[Any] | None = None,
    format: Format = "chat",
    language: Language = "en",
    temperature: float = 0.7,
    max_tokens: int = 512,
    top_p: float | None = None,
    seed: int | None = None,
    stop: list[str] | None = None,
) -> PlainProposer:
    """A model with its own system prompt, few-shot examples and sampling settings."""
    return PlainProposer(_prompted(model, system, examples, format, language, temperature, max_tokens, top_p, seed, stop))


def _usable(proposals: Sequence[Proposal]) -> list[Proposal]:
    usable = [p for p in proposals if p.ok]
    if not usable:
        errors = "; ".join(f"{p.agent}: {p.error}" for p in proposals) or "no proposals"
        raise AggregationError(f"every proposal failed ({errors})")
    return usable


class Synthesize:
    """The paper's aggregator: all proposals as numbered references, one synthesized answer."""

    def __init__(self, prompted: Prompted) -> None:
        self.prompted = prompted

    async def aggregate(self, query: str, proposals: Sequence[Proposal], ctx: AgentContext) -> Answer:
        usable = _usable(proposals)
        record = await self.prompted.ask(query, [p.text for p in usable], ctx)
        if record.error:
            raise AggregationError(record.error)
        return Answer(record.output.strip(), ctx.agent)


@aggregator("synthesize")
def synthesize(
    model: str = "local",
    language: Language = "en",
    system: str | None = None,
    examples: list[Any] | None = None,
    format: Format = "chat",
    temperature: float = 0.7,
    max_tokens: int = 512,
    top_p: float | None = None,
    seed: int | None = None,
    stop: list[str] | None = None,
) -> Synthesize:
    """Aggregate-and-synthesize (English, or the Japanese version with language: ja)."""
    return Synthesize(_prompted(model, system, examples, format, language, temperature, max_tokens, top_p, seed, stop))


class Rank:
    """The paper's LLM-ranker baseline: the model only picks one proposal, which is returned verbatim."""

    def __init__(self, prompted: Prompted, fallback: str) -> None:
        self.prompted = prompted
        self.fallback = fallback

    async def aggregate(self, query: str, proposals: Sequence[Proposal], ctx: AgentContext) -> Answer:
        usable = _usable(proposals)
        record = await self.prompted.ask(query, [p.text for p in usable], ctx, kind="rank")
        if record.error:
            raise AggregationError(record.error)
        choice = parse_choice(record.output, len(usable))
        if choice is None:
            if self.fallback == "error":
                raise AggregationError(f"ranker verdict names no response 1..{len(usable)}: {record.output[:80]!r}")
            return Answer(usable[0].text, ctx.agent, 0, note=f"verdict {record.output[:40]!r} unparsed; took the first")
        return Answer(usable[choice - 1].text, ctx.agent, proposals.index(usable[choice - 1]))


@aggregator("rank")
def rank(
    model: str = "local",
    system: str | None = None,
    examples: list[Any] | None = None,
    format: Format = "chat",
    temperature: float = 0.0,
    max_tokens: int = 16,
    fallback: str = "first",
) -> Rank:
    """LLM ranker: picks the best proposal by number (fallback: first | error when unparsable)."""
    if fallback not in ("first", "error"):
        raise ConfigError(f"rank fallback must be 'first' or 'error', not {fallback!r}")
    return Rank(_prompted(model, system, examples, format, "en", temperature, max_tokens, None, None, None), fallback)


class Vote:
    """Majority over extracted answers; ties go to the answer seen first. Makes no model call."""

    def __init__(self, extract: Callable[[str], str]) -> None:
        self.extract = extract

    def choose(self, texts: Sequence[str]) -> tuple[int, int] | None:
        """(position of the winning text, its votes), or None when no answer could be extracted."""
        return majority([self.extract(t) for t in texts])

    async def aggregate(self, query: str, proposals: Sequence[Proposal], ctx: AgentContext) -> Answer:
        usable = _usable(proposals)
        chosen = self.choose([p.text for p in usable])
        if chosen is None:
            return Answer(usable[0].text, ctx.agent, proposals.index(usable[0]), note="no answer extracted; took the first")
        winner, votes = chosen
        note = f"{votes}/{len(usable)} votes"
        return Answer(usable[winner].text, ctx.agent, proposals.index(usable[winner]), note=note)


@aggregator("vote")
def vote(extractor: str = "exact") -> Vote:
    """Majority vote over answers taken out by a registered extractor (exact, numeric, choice, ...)."""
    return Vote(build("extractor", extractor, where="extractor"))
