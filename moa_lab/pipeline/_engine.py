"""The async engine: query -> selector -> layers (concurrent proposers) -> aggregator."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

from moa_lab.agents import AgentContext, AggregationError
from moa_lab.core import Answer, BudgetExceeded, CallRecord, MoaLabError, Proposal, Sample, Stage, StoreDamaged
from moa_lab.models import Admission, Budget, ModelSet, cache_only, gather_calls
from moa_lab.pipeline._cascade import Cascade, LayerOutcome
from moa_lab.pipeline._plan import Prepared, QueryPlan, plan_query
from moa_lab.scoring import Scoring
from moa_lab.selection import PoolSelector, Selector, build_selector
from moa_lab.topology import Agent, TopologySpec, build_topology
from moa_lab.tracking import QueryRecord


class Pipeline:
    """A built topology bound to a ModelSet. One Pipeline serves many queries concurrently."""

    def __init__(
        self, spec: TopologySpec, models: ModelSet, *, selector: Selector | None = None, budget: Budget | Admission | None = None,
        scoring: Scoring | None = None, prepared: Prepared | None = None,
    ) -> None:
        self.spec = spec
        self.models = models
        self.budget = budget if budget is not None else models.budget
        """What each query is admitted against (a trial stage's Admission, else the ModelSet's budget)."""
        self.scoring = scoring
        """How each query's record is scored, inside its admission (its judge's calls are planned with it)."""
        self.prepared = prepared if prepared is not None else Prepared()
        """Queries made ready before they run (a search trial's stage prepares its queries to admit itself)."""
        self.topology = build_topology(spec)
        self.cascades = [Cascade(layer.cascade, where=f"layers[{i}].cascade") if layer.cascade is not None else None
                         for i, layer in enumerate(spec.layers)]
        self.selector = selector or build_selector(spec.selector)
        if isinstance(self.selector, PoolSelector) and self.topology.layers:
            self.selector.bind([a.spec for a in self.topology.layers[0]])  # a bad pool fails here, not mid-run
        for ref in spec.models():
            models.check(ref)
        models.check_prices([*spec.models(), *(scoring.models() if scoring is not None else ())])

    async def plan(self, sample: Sample) -> QueryPlan:
        """The worst case of `sample`'s query, its scoring included: what it is admitted on (see `plan_query`)."""
        return await plan_query(self.topology, self.models, sample, self._select(sample), self.scoring)

    async def prepare(self, sample: Sample) -> QueryPlan | None:
        """Make `sample`'s query ready to run, into `self.prepared`: answered whole from the call cache
        when every call it makes (its judge's too) is cached, nothing sent or reserved (returns None);
        else planned (returns its worst case, which it must be admitted on)."""
        if (record := await self._from_cache(sample)) is not None:
            self.prepared.records[sample.id] = record
            return None
        self.prepared.plans[sample.id] = plan = await self.plan(sample)
        return plan

    async def _from_cache(self, sample: Sample) -> QueryRecord | None:
        """The query's record when every call it makes (its judge's too) is in the call cache, made
        without sending, reserving or waiting for anything (see `models.cache_only`); else None."""
        if self.models.cache is None:
            return None
        with cache_only() as only:
            record = await self._run(sample, self._unadmitted)
        return None if only.missed else record

    def _select(self, sample: Sample) -> list[int]:
        if not self.topology.layers:
            return []
        return list(self.selector.select(sample.input, [a.spec for a in self.topology.layers[0]]))

    async def run_query(self, sample: Sample) -> QueryRecord:
        """Run one query through every layer (and score it, with `scoring`). Failures, a plugin's
        bug included, are recorded in the record (with the traceback of an unexpected exception),
        never raised.

        A proposer that raises, whatever the exception, fails its own proposal only (its traceback
        is kept in the record), like a proposer whose endpoint failed: the layer goes on with the
        rest unless `on_proposer_error` is "fail" or every proposer failed.

        A layer with a cascade calls its proposers in stages (see `_cascade`); with the cascade's
        `exit`, a layer that ends agreeing answers the query and the later layers are skipped."""
        if (record := self.prepared.records.pop(sample.id, None)) is not None:
            return record
        if sample.id not in self.prepared.plans and (record := await self._from_cache(sample)) is not None:
            return record  # a cached query costs nothing: no worst case to plan, no admission
        return await self._run(sample, self._admit)

    async def _admit(self, sample: Sample) -> tuple[list[int], Admission | None]:
        """The layer-1 agents the query runs, and its admission on its whole worst case (its judge's
        too): it fits, or the query never starts."""
        plan = self.prepared.plans.pop(sample.id, None)
        selected = plan.selected if plan is not None else self._select(sample)
        if self.budget is None:
            return selected, None
        plan = plan or await plan_query(self.topology, self.models, sample, selected, self.scoring)
        return selected, await self.budget.admit(plan.usd, plan.tokens, dict(plan.calls))

    async def _unadmitted(self, sample: Sample) -> tuple[list[int], Admission | None]:
        return self._select(sample), None

    async def _run(self, sample: Sample, admit: Callable[[Sample], Awaitable[tuple[list[int], Admission | None]]]) -> QueryRecord:
        """The query through every layer, admitted by `admit`, its calls drawn from that admission and
        scored within it."""
        started, start = time.time(), time.perf_counter()
        calls: list[CallRecord] = []
        tracebacks: list[str] = []
        layers: list[list[Proposal]] = []
        stages: list[Stage] = []
        selected: list[int] | None = None
        answer, error, trace = None, None, None
        admission: Admission | None = None
        try:
            try:
                selected, admission = await admit(sample)
                references: Sequence[Proposal] = ()
                for i, layer in enumerate(self.topology.layers):
                    agents = layer if i else tuple(layer[j] for j in selected)
                    proposals, outcome = await self._layer(i, agents, sample, references, calls, admission, tracebacks)
                    layers.append(proposals)
                    stages += outcome.stages if outcome is not None else []
                    failed = [p for p in proposals if not p.ok]
                    if failed and (self.spec.on_proposer_error == "fail" or len(failed) == len(proposals)):
                        raise AggregationError(f"layer {i + 1}: " + "; ".join(f"{p.agent}: {p.error}" for p in failed))
                    cascade = self.cascades[i]
                    if outcome is not None and cascade is not None and (answer := cascade.exit_answer(outcome)) is not None:
                        stages[-1] = replace(stages[-1], exited=True)
                        break
                    references = proposals
                if answer is None:
                    answer = await self._aggregate(sample, references, calls, admission)
            except BudgetExceeded as exc:
                error = f"BudgetExceeded: {'query not started: ' if admission is None else ''}{exc}"
            except StoreDamaged:
                raise  # every later sample would fail the same way: the run stops with one line
            except MoaLabError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - one bad sample (a plugin's bug) never stops a run
                error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            trace = "\n".join([*tracebacks, *([trace] if trace else [])]) or None
            record = QueryRecord(sample=sample, answer=answer, error=error, traceback=trace, selected=selected, layers=layers,
                                 stages=stages, calls=calls, latency_s=time.perf_counter() - start, started=started)
            if self.scoring is not None:
                record = await self.scoring.score(record, self.models, admission)
            return record
        finally:
            if admission is not None:  # what the query did not use goes back at once, even if cancelled
                await asyncio.shield(admission.close())

    async def _layer(
        self, i: int, agents: Sequence[Agent], sample: Sample, references: Sequence[Proposal], calls: list[CallRecord],
        admission: Admission | None, tracebacks: list[str],
    ) -> tuple[list[Proposal], LayerOutcome | None]:
        """Layer `i + 1`'s proposals: all at once, or stage by stage when it has a cascade (then with
        the cascade's outcome)."""

        async def call_stage(part: Sequence[Agent], stage: int) -> list[Proposal]:
            return await self._run_layer(part, sample, references, calls, i + 1, admission, tracebacks, stage)

        cascade = self.cascades[i]
        if cascade is None:
            return await call_stage(agents, 0), None
        outcome = await cascade.run(agents, call_stage, i + 1)
        return outcome.proposals, outcome

    async def _run_layer(
        self, agents: Sequence[Agent], sample: Sample, references: Sequence[Proposal], calls: list[CallRecord], layer: int,
        admission: Admission | None, tracebacks: list[str], stage: int = 0,
    ) -> list[Proposal]:
        ok_refs = tuple(p for p in references if p.ok)

        async def one(agent: Agent) -> Proposal:
            ctx = AgentContext(self.models, calls, agent.label, layer, agent.sample_index, ok_refs, sample.history, admission,
                               stage=stage)
            try:
                return await agent.impl.propose(sample.input, ctx)
            except StoreDamaged:
                raise
            except MoaLabError as exc:
                return Proposal(agent.label, "", f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a plugin's bug fails its proposal, not the query
                tracebacks.append(f"layer {layer}, {agent.label}:\n{traceback.format_exc()}")
                return Proposal(agent.label, "", f"{type(exc).__name__}: {exc}")

        return await gather_calls(one(a) for a in agents)

    async def _aggregate(
        self, sample: Sample, proposals: Sequence[Proposal], calls: list[CallRecord], admission: Admission | None
    ) -> Answer:
        agg = self.topology.aggregator
        if agg is None:
            only = proposals[0]
            return Answer(only.text, only.agent, 0)
        layer = len(self.topology.layers) + 1
        ctx = AgentContext(self.models, calls, agg.label, layer, 0, tuple(proposals), sample.history, admission)
        return await agg.impl.aggregate(sample.input, proposals, ctx)

    async def stream(self, samples: Iterable[Sample], *, concurrency: int = 16) -> AsyncIterator[QueryRecord]:
        """Run queries concurrently (at most `concurrency` in flight) and yield records as they finish.

        `samples` is read lazily, one sample each time a slot frees, so a generator that stops
        yielding stops the run after the queries in flight. Per-endpoint limits still apply
        inside: this bounds memory and open queries, not calls."""
        one = self.run_query
        pending: set[asyncio.Task[QueryRecord]] = set()
        iterator = iter(samples)
        try:
            while True:
                while len(pending) < concurrency and (sample := next(iterator, None)) is not None:
                    pending.add(asyncio.ensure_future(one(sample)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: t.exception() is not None):  # records first, then a fatal error
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)  # retrieved: no "exception never retrieved"

    async def run(self, samples: Iterable[Sample], *, concurrency: int = 16) -> list[QueryRecord]:
        """All records, in input order."""
        samples = list(samples)
        order = {id(s): i for i, s in enumerate(samples)}
        records: list[QueryRecord | None] = [None] * len(samples)
        async for record in self.stream(samples, concurrency=concurrency):
            records[order[id(record.sample)]] = record
        return [r for r in records if r is not None]


async def run_async(
    spec: TopologySpec, samples: Iterable[Sample], models: ModelSet, *, concurrency: int = 16
) -> list[QueryRecord]:
    """Run `spec` over `samples`; the caller owns (and closes) `models`."""
    return await Pipeline(spec, models).run(samples, concurrency=concurrency)


def run(spec: TopologySpec, samples: Iterable[Sample], models: ModelSet | None = None, *, concurrency: int = 16) -> list[QueryRecord]:
    """The one synchronous door: run a topology over samples and close the models afterwards."""

    async def main() -> list[QueryRecord]:
        owned = models or ModelSet()
        try:
            return await run_async(spec, samples, owned, concurrency=concurrency)
        finally:
            await owned.aclose()

    return asyncio.run(main())
