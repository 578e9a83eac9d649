"""Scorers: (sample, answer) -> Score. Exact-match scorers are pure; judges call models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from moa_lab.answers import CHOICE, EXACT, NUMERIC, Extractor, equal
from moa_lab.core import CallRecord, Message, Request, Sample, Sampling, Score
from moa_lab.models import Admission, ModelSet
from moa_lab.registry import register
from moa_lab.tracking import QueryRecord

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ScoringContext:
    """What a scorer may use: the models (judges go through the same cache, budget and limits) and
    the call list where its calls are traced."""

    models: ModelSet | None = None
    calls: list[CallRecord] = field(default_factory=list)
    budget: Admission | None = None
    """The query's admission the judge's calls draw from (None: the ModelSet's budget, if any)."""
    agent: str = "judge"
    """What the calls are traced (and planned) as: `judge`, or `judge/<layer>:<agent>` for a proposal."""
    probe: Callable[[str, Request], CallRecord] | None = None
    """Set while a query's worst case is planned: calls go to it instead of a model."""

    async def call(self, model: str, messages: tuple[Message, ...], sampling: Sampling) -> CallRecord:
        if self.models is None:
            raise RuntimeError("this scorer calls a model, but the scoring context has no ModelSet")
        if self.probe is not None:
            record = self.probe(model, Request(self.models.get(model).name, messages, sampling))
        else:
            record = await self.models.get(model).call(messages, sampling, agent=self.agent, layer=0, budget=self.budget)
        self.calls.append(record)
        return record


@runtime_checkable
class Scorer(Protocol):
    """Scores one answer. `value` is in [0, 1] for match scorers; judges document their scale."""

    name: str
    calls_models: bool

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score: ...


@runtime_checkable
class SummarizingScorer(Scorer, Protocol):
    """A scorer whose run-level statistic is more than the mean score (a judge's win rates)."""

    def summary(self, records: Sequence[QueryRecord]) -> dict[str, float]: ...


def scorer(name: str | None = None) -> Callable[[F], F]:
    """Register a scorer factory under kind "scorer"."""
    return register("scorer", name)


class Match:
    """A pure scorer: the answer's key (read and normalised by an `Extractor`) equals the target's.

    The `vote` aggregator groups answers through the same extractors, so a vote and its scorer agree
    on which answers are the same."""

    calls_models = False

    def __init__(self, name: str, extractor: Extractor) -> None:
        self.name = name
        self.extractor = extractor

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        if sample.target is None:
            raise ValueError(f"scorer {self.name!r} needs a target; sample {sample.id!r} has none")
        got = self.extractor.read(answer)
        ok = equal(self.extractor.key_of(got), self.extractor.normalize(sample.target))
        return Score(1.0 if ok else 0.0, f"extracted {str(got)!r}, target {sample.target!r}")

    def match(self, answer: str, target: str) -> bool:
        """Whether `answer` states `target` (the verdict `score` gives, without the explanation)."""
        return self.extractor.matches(answer, target)


@scorer("numeric")
def numeric() -> Match:
    """The final number of the answer (JSON "answer", ####, last number) equals the target."""
    return Match("numeric", NUMERIC)


@scorer("exact")
def exact() -> Match:
    """The answer's first line equals the target after normalisation (case, punctuation, articles)."""
    return Match("exact", EXACT)


@scorer("choice")
def choice() -> Match:
    """The choice letter in the answer equals the target letter."""
    return Match("choice", CHOICE)
