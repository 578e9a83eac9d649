"""The RunLog's typed records: one header per run, one record per query, the calls inside it.

Every reader (evaluation, trackers, routing data, search, the command line) uses these attributes;
totals are computed from the calls, never stored beside them, so they cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from moa_lab.core import Answer, CallRecord, Cost, Proposal, Sample, Stage, Usage

SCHEMA = "moa-lab/runlog"
VERSION = 2


class RunHeader(BaseModel):
    """The first line of a RunLog: what ran (topology, scorer) on how many samples."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    schema_: Literal["moa-lab/runlog"] = Field(SCHEMA, alias="schema")
    version: int = VERSION
    created: float = Field(default_factory=time.time)
    label: str
    experiment: str = ""
    task: str | None = None
    """The built-in task or benchmark turn the samples come from (None: the whole dataset)."""
    topology: dict[str, Any]
    scorer: str | None = None
    """The scorer's name; None when the run has no targets and nothing was scored."""
    samples: int

    def same_run(self, other: RunHeader) -> bool:
        """True when `other` describes the same topology, scorer and samples (a resume may continue it)."""
        return (self.topology, self.scorer, self.task) == (other.topology, other.scorer, other.task)


class QueryRecord(BaseModel):
    """What one query produced: the answer, every layer's proposals, every call, and its score."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    sample: Sample
    answer: Answer | None = None
    error: str | None = None
    """Why the sample failed: the query (then `answer` is None), or its scorer or judge."""
    traceback: str | None = None
    """The traceback of an unexpected exception (a plugin's bug), so one bad sample can be debugged."""
    selected: list[int] | None = None
    """Which layer-1 proposers the selector called (None: all of them)."""
    layers: list[list[Proposal]] = Field(default_factory=list)
    """Each layer's proposals, in call order; a cascaded layer holds only those its stages called,
    and a cascade's exit leaves out the layers after it."""
    stages: list[Stage] = Field(default_factory=list)
    """Every stage of the cascaded layers, in order: proposals so far, agreement, whether it stopped
    the layer and whether the topology answered there (empty without cascades)."""
    calls: list[CallRecord] = Field(default_factory=list)
    latency_s: float = 0.0
    started: float = 0.0
    score: float | None = None
    """The answer's score; None when unscored (no scorer, or a judge could not decide)."""
    score_explanation: str = ""
    proposal_scores: list[float | None] | None = None
    """The score of each layer-1 proposal, in layer order (a failed proposal scores 0; None: the
    scorer could not decide)."""
    layer_scores: list[list[float | None]] | None = None
    """The score of every layer's proposals, layer after layer (the first is `proposal_scores`), so
    "does a later layer help" can be read from the run; None when proposals were not scored."""
    judge_calls: list[CallRecord] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.sample.id

    @property
    def usage(self) -> Usage:
        """Tokens of the topology's calls (cache hits included)."""
        return Usage(sum(c.usage.input_tokens for c in self.calls), sum(c.usage.output_tokens for c in self.calls))

    @property
    def cost(self) -> Cost:
        """The topology's calls: paid (cache hits free) and at list price (the topology's price)."""
        return total_cost(self.calls)

    @property
    def judge_cost(self) -> Cost:
        return total_cost(self.judge_calls)

    @property
    def total_cost(self) -> Cost:
        """Topology and judge together: what this query cost the run."""
        return self.cost + self.judge_cost

    @property
    def critical_path_s(self) -> float:
        """The topology's latency: the slowest call of each layer, summed, with each call's original
        endpoint latency (so a cached run still measures the topology)."""
        slowest: dict[int, float] = {}
        for c in self.calls:
            slowest[c.layer] = max(slowest.get(c.layer, 0.0), c.list_latency_s)
        return sum(slowest.values())

    @property
    def oracle(self) -> float | None:
        """The best layer-1 proposal's score ("any proposer right"), when proposals were scored and
        the scorer decided at least one (an unscored run has no oracle)."""
        decided = [s for s in self.proposal_scores or () if s is not None]
        return max(decided) if decided else None

    @property
    def new_calls(self) -> int:
        """Calls that reached an endpoint (not answered by the cache)."""
        return sum(1 for c in self.calls if not c.cached)


def total_cost(calls: Iterable[CallRecord]) -> Cost:
    """The sum of the calls' costs (each part summed in call order, as `Cost.__add__` would, without
    a Cost per step: summaries add up every record of a run)."""
    costs = [c.cost for c in calls]
    return Cost(sum(c.paid_usd for c in costs), sum(c.list_usd for c in costs), sum(c.flops for c in costs))
