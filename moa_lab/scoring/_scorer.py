"""Scorers: (sample, answer) -> Score. Exact-match scorers are pure; judges call models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from moa_lab.core import CallRecord, Message, Sample, Sampling, Score
from moa_lab.models import ModelSet
from moa_lab.registry import register
from moa_lab.tracking import QueryRecord
from moa_lab.scoring._extract import extract_choice, extract_number, normalize_text, numbers_equal

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ScoringContext:
    """What a scorer may use: the models (judges go through the same cache, budget and limits) and
    the call list where its calls are traced."""

    models: ModelSet | None = None
    calls: list[CallRecord] = field(default_factory=list)

    async def call(self, model: str, messages: tuple[Message, ...], sampling: Sampling, *, agent: str = "judge") -> CallRecord:
        if self.models is None:
            raise RuntimeError("this scorer calls a model, but the scoring context has no ModelSet")
        record = await self.models.get(model).call(messages, sampling, agent=agent, layer=0)
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
    """A pure scorer: extract from the answer, compare with the target."""

    calls_models = False

    def __init__(self, name: str, compare: Callable[[str, str], tuple[bool, str]]) -> None:
        self.name = name
        self._compare = compare

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        if sample.target is None:
            raise ValueError(f"scorer {self.name!r} needs a target; sample {sample.id!r} has none")
        ok, extracted = self._compare(answer, sample.target)
        return Score(1.0 if ok else 0.0, f"extracted {extracted!r}, target {sample.target!r}")

    def match(self, answer: str, target: str) -> bool:
        return self._compare(answer, target)[0]


def _numeric(answer: str, target: str) -> tuple[bool, str]:
    got = extract_number(answer)
    return (got is not None and numbers_equal(got, target)), str(got)


def _exact(answer: str, target: str) -> tuple[bool, str]:
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    got = normalize_text(first)
    return got == normalize_text(target), got


def _choice(answer: str, target: str) -> tuple[bool, str]:
    got = extract_choice(answer)
    return got == target.strip().upper(), str(got)


@scorer("numeric")
def numeric() -> Match:
    """The final number of the answer (JSON "answer", ####, last number) equals the target."""
    return Match("numeric", _numeric)


@scorer("exact")
def exact() -> Match:
    """The answer's first line equals the target after normalisation (case, punctuation, articles)."""
    return Match("exact", _exact)


@scorer("choice")
def choice() -> Match:
    """The choice letter in the answer equals the target letter."""
    return Match("choice", _choice)


@register("extractor", "answer")
def answer_extractor() -> Callable[[str], str]:
    """The final numeric answer (JSON "answer" field, ####, "answer is", last number), for votes."""
    return lambda text: extract_number(text) or ""
