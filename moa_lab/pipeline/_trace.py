"""What one query produced: the answer, every layer's proposals and every call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moa_lab.core import Answer, CallRecord, Cost, Proposal, Sample, Usage


@dataclass
class QueryResult:
    """The trace of one query. `error` is set (and `answer` None) when the query failed."""

    sample: Sample
    answer: Answer | None = None
    error: str | None = None
    layers: list[list[Proposal]] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    selected: list[int] | None = None
    latency_s: float = 0.0
    started: float = 0.0

    @property
    def usage(self) -> Usage:
        """Tokens of the calls made for this query (cache hits included)."""
        return sum((c.usage for c in self.calls), Usage())

    @property
    def cost(self) -> Cost:
        """Money actually spent: cache hits cost nothing."""
        return sum((c.cost for c in self.calls), Cost())

    @property
    def list_cost_usd(self) -> float:
        """What the query's calls cost at list price, cache hits included: the topology's price."""
        return sum(c.list_usd for c in self.calls)

    @property
    def critical_path_s(self) -> float:
        """The topology's latency for this query: the slowest call of each layer, summed, with each
        call's original endpoint latency (so a cached run still measures the topology)."""
        slowest: dict[int, float] = {}
        for c in self.calls:
            slowest[c.layer] = max(slowest.get(c.layer, 0.0), c.list_latency_s)
        return sum(slowest.values())

    @property
    def new_calls(self) -> int:
        """Calls that reached an endpoint (not answered by the cache)."""
        return sum(1 for c in self.calls if not c.cached)

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "id": self.sample.id,
            "input": self.sample.input,
            "target": self.sample.target,
            "metadata": self.sample.metadata,
            "answer": self.answer.text if self.answer else None,
            "answer_agent": self.answer.agent if self.answer else None,
            "answer_note": self.answer.note if self.answer else None,
            "error": self.error,
            "selected": self.selected,
            "layers": [[{"agent": p.agent, "text": p.text, "error": p.error} for p in layer] for layer in self.layers],
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": self.cost.usd,
            "list_cost_usd": self.list_cost_usd,
            "flops": self.cost.flops,
            "latency_s": self.latency_s,
            "critical_path_s": self.critical_path_s,
            "started": self.started,
            "calls": [c.to_dict() for c in self.calls],
        }
