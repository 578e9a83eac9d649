"""A cascade: call proposers in stages and stop as soon as the answers so far agree enough.

A `CascadePlan` is the typed record a router artifact stores (under `cascade.plans` in router.json)
and a live pipeline reads: which proposers each stage adds, and after each stage but the last the
least agreement that stops there. The final answer is the vote of every proposer called, in the
plan's tie order. Agreement is measured by `vote_margin` over the extracted answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moa_lab.core import ConfigError

MEASURES = ("vote-margin",)
"""Agreement measures a plan can name. `vote-margin`: see `vote_margin`."""


def vote_margin(answers: Sequence[int | str | None], called: int | None = None) -> float:
    """(votes for the winning answer − votes for the runner-up) / proposers called, in [0, 1].

    `answers` are the called proposers' extracted answers in the plan's tie order (None, "" or -1:
    nothing extracted, which votes for nothing); `called` defaults to their number. The winner is the
    answer with most votes, ties to the one given first, as the `vote` aggregator decides. Two of two
    agreeing is 1, two differing 0, three of four agreeing (3-1) 0.5, all different 0."""
    n = len(answers) if called is None else called
    votes: dict[Any, int] = {}
    for answer in answers:
        if answer is not None and answer != "" and answer != -1:
            votes[answer] = votes.get(answer, 0) + 1
    if not votes or n == 0:
        return 0.0
    ranked = sorted(votes.values(), reverse=True)
    return (ranked[0] - (ranked[1] if len(ranked) > 1 else 0)) / n


@dataclass(frozen=True)
class CascadePlan:
    """Stages of proposers (indices in the router's proposer order) and when to stop.

    `stages[t]` are the proposers stage t adds; after stage t (all but the last) the cascade stops
    when the `measure` of every answer so far is at least `min_agreement[t]`. `order` is every
    proposer of the plan in the vote's tie order (most accurate on the training split first).
    `accuracy` and `usd` are what the plan scored on the training split (mean $ per query)."""

    stages: tuple[tuple[int, ...], ...]
    min_agreement: tuple[float, ...]
    order: tuple[int, ...]
    measure: str = "vote-margin"
    accuracy: float | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        if not self.stages or any(not s for s in self.stages):
            raise ConfigError("a cascade plan needs at least one stage, and every stage at least one proposer")
        if len(self.min_agreement) != len(self.stages) - 1:
            raise ConfigError(f"a cascade of {len(self.stages)} stages has {len(self.stages) - 1} stop thresholds, "
                              f"not {len(self.min_agreement)}")
        if sorted(self.order) != sorted(j for s in self.stages for j in s):
            raise ConfigError("a cascade plan's tie order must list each of its proposers once")
        if self.measure not in MEASURES:
            raise ConfigError(f"unknown agreement measure {self.measure!r} (known: {', '.join(MEASURES)})")

    def called(self, stage: int) -> list[int]:
        """Every proposer called up to and including `stage`, in tie order."""
        upto = {j for s in self.stages[:stage + 1] for j in s}
        return [j for j in self.order if j in upto]

    def stops(self, stage: int, agreement: float) -> bool:
        """Whether the cascade ends after `stage` given the agreement of the answers so far."""
        return stage == len(self.stages) - 1 or agreement >= self.min_agreement[stage] - 1e-9

    def remap(self, index: Sequence[int]) -> CascadePlan:
        """The same plan over another numbering of the pool: proposer j becomes index[j]."""
        return CascadePlan(tuple(tuple(int(index[j]) for j in s) for s in self.stages), self.min_agreement,
                           tuple(int(index[j]) for j in self.order), self.measure, self.accuracy, self.usd)

    def label(self, names: Sequence[str] | None = None) -> str:
        """`a+b ≥0.5→ c` style: each stage's proposers and the agreement that stops after it."""
        parts = []
        for t, stage in enumerate(self.stages):
            text = "+".join(names[j] if names else str(j) for j in stage)
            parts.append(text if t == len(self.stages) - 1 else f"{text} [stop ≥{self.min_agreement[t]:.2f}]")
        return " → ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The plan as router.json stores it."""
        return {"stages": [list(s) for s in self.stages], "min_agreement": list(self.min_agreement),
                "order": list(self.order), "measure": self.measure, "accuracy": self.accuracy, "usd": self.usd}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CascadePlan:
        """Read a plan written by `to_dict`; a malformed one is a ConfigError."""
        try:
            return cls(tuple(tuple(int(j) for j in s) for s in data["stages"]),
                       tuple(float(v) for v in data["min_agreement"]), tuple(int(j) for j in data["order"]),
                       str(data.get("measure", "vote-margin")), data.get("accuracy"), data.get("usd"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed cascade plan {dict(data)!r}: {exc}; retrain the router") from None
