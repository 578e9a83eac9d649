"""A query's worst case, planned before it starts: every call of every layer and of its judge, none sent.

The topology's agents are run against a probe instead of their models: each call they would make
is bounded the way `Model` bounds it (prompt_token_bound of what is sent plus max_tokens out, or a
replay client's known answer length; $0 for a cached call) and answered with empty text. A later
layer sees those empty answers, so its prompt is bounded by its template plus the previous layer's
worst-case outputs. A judge scoring the answer is bounded the same way, the answer at its
worst-case length (see `scoring.Scoring.plan`). The query is admitted on the sum (see
`models.Admission`).

A cascaded layer is planned whole, every stage of it, and so is every layer after a cascade's exit:
the worst case is a query whose answers never agree. The calls it does not make were reserved and
are released when the query's admission closes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from moa_lab.agents import AgentContext
from moa_lab.core import CallRecord, Cost, Proposal, Request, Sample, Usage
from moa_lab.models import ModelSet, Reservation
from moa_lab.scoring import Scoring
from moa_lab.topology import Topology
from moa_lab.tracking import QueryRecord


@dataclass
class QueryPlan:
    """The worst case of one query: its total and each call's bound, keyed `"<layer>:<agent>"`."""

    usd: float = 0.0
    tokens: int = 0
    calls: dict[str, list[Reservation]] = field(default_factory=lambda: defaultdict(list))
    outputs: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    """The worst-case output tokens of each layer (what the next layer's prompt may grow by)."""
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """The worst-case output tokens of each agent's calls, by key (how long its text may be)."""
    selected: list[int] = field(default_factory=list)
    """The layer-1 agents the query was planned with (the ones it runs)."""

    def add(self, key: str, layer: int, bound: Reservation, output: int) -> None:
        self.calls[key].append(bound)
        self.usd += bound.usd
        self.tokens += bound.tokens
        self.outputs[layer] += output
        self.written[key] += output

    def __add__(self, other: QueryPlan) -> QueryPlan:
        """The worst case of both (a trial stage is the sum of its queries)."""
        return QueryPlan(self.usd + other.usd, self.tokens + other.tokens)


@dataclass
class Prepared:
    """Queries made ready before they run (see `Pipeline.prepare`), by sample id: each either
    answered whole from the call cache (its record) or planned (its worst case). Each is used once."""

    plans: dict[str, QueryPlan] = field(default_factory=dict)
    records: dict[str, QueryRecord] = field(default_factory=dict)


async def plan_query(
    topology: Topology, models: ModelSet, sample: Sample, selected: Sequence[int], scoring: Scoring | None = None
) -> QueryPlan:
    """Bound every call `topology` makes for `sample` (layer 1 limited to the `selected` agents), and
    with `scoring` every call its judge makes to score the answer (and the proposals)."""
    plan = QueryPlan(selected=list(selected))

    def probe(ctx: AgentContext, ref: str, request: Request) -> CallRecord:
        model = models.get(ref)
        grown = plan.outputs[ctx.layer - 1] if ctx.references else 0
        bound, output = model.plan_call(request, sample_index=ctx.sample_index, extra_input_tokens=grown)
        plan.add(f"{ctx.layer}:{ctx.agent}", ctx.layer, bound, output)
        return CallRecord(ctx.agent, ref, request.messages, "", Usage(), Cost(), 0.0, False, layer=ctx.layer)

    references: tuple[Proposal, ...] = ()
    ran: list[list[str]] = []
    for i, layer in enumerate(topology.layers):
        agents = tuple(layer[j] for j in selected) if i == 0 else layer
        ran.append([agent.label for agent in agents])
        proposals = []
        for agent in agents:
            ctx = AgentContext(models, [], agent.label, i + 1, agent.sample_index, references, sample.history, probe=probe)
            try:
                await agent.impl.propose(sample.input, ctx)
            except Exception:  # noqa: BLE001, S110 - an agent confused by an empty answer made its calls already
                pass
            proposals.append(Proposal(agent.label, ""))
        references = tuple(proposals)
    agg = topology.aggregator
    if agg is not None:
        ctx = AgentContext(models, [], agg.label, len(topology.layers) + 1, 0, references, sample.history, probe=probe)
        try:
            await agg.impl.aggregate(sample.input, references, ctx)
        except Exception:  # noqa: BLE001, S110 - as above
            pass
    if scoring is not None:
        written = [[(label, plan.written[f"{i}:{label}"]) for label in labels] for i, labels in enumerate(ran, 1)]
        # the answer is the aggregator's text or one of the last layer's proposals (a vote, a ranking)
        last = [tokens for _, tokens in written[-1]] if written else []
        aggregated = [plan.written[f"{len(ran) + 1}:{agg.label}"]] if agg is not None else []
        answer = max([*last, *aggregated], default=0)
        for key, bound in await scoring.plan(sample, models, answer, written):
            plan.add(key, 0, bound, 0)
    return plan
