"""The async engine: query -> selector -> layers (concurrent proposers) -> aggregator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from moa_lab.agents import AgentContext, AggregationError
from moa_lab.core import Answer, MoaLabError, Proposal, Sample
from moa_lab.models import ModelSet
from moa_lab.pipeline._trace import QueryResult
from moa_lab.selection import Selector, build_selector
from moa_lab.topology import Agent, TopologySpec, build_topology


class Pipeline:
    """A built topology bound to a ModelSet. One Pipeline serves many queries concurrently."""

    def __init__(self, spec: TopologySpec, models: ModelSet, *, selector: Selector | None = None) -> None:
        self.spec = spec
        self.models = models
        self.topology = build_topology(spec)
        self.selector = selector or build_selector(spec.selector)
        bind = getattr(self.selector, "bind", None)
        if callable(bind) and self.topology.layers:  # a selector that checks the pool fails here, not mid-run
            bind([a.spec for a in self.topology.layers[0]])
        for ref in spec.models():
            models.check(ref)

    async def run_query(self, sample: Sample) -> QueryResult:
        """Run one query through every layer. Failures are recorded in the result, never raised."""
        result = QueryResult(sample, started=time.time())
        start = time.perf_counter()
        try:
            references: Sequence[Proposal] = ()
            for i, layer in enumerate(self.topology.layers):
                agents = layer
                if i == 0:
                    result.selected = self.selector.select(sample.input, [a.spec for a in layer])
                    agents = tuple(layer[j] for j in result.selected)
                proposals = await self._run_layer(agents, sample.input, references, result, i + 1)
                result.layers.append(proposals)
                failed = [p for p in proposals if not p.ok]
                if failed and (self.spec.on_proposer_error == "fail" or len(failed) == len(proposals)):
                    raise AggregationError(f"layer {i + 1}: " + "; ".join(f"{p.agent}: {p.error}" for p in failed))
                references = proposals
            result.answer = await self._aggregate(sample.input, references, result)
        except MoaLabError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.latency_s = time.perf_counter() - start
        return result

    async def _run_layer(
        self, agents: Sequence[Agent], query: str, references: Sequence[Proposal], result: QueryResult, layer: int
    ) -> list[Proposal]:
        ok_refs = tuple(p for p in references if p.ok)
        history = _history(result.sample)

        async def one(agent: Agent) -> Proposal:
            ctx = AgentContext(self.models, result.calls, agent.label, layer, agent.sample_index, ok_refs, history)
            try:
                return await agent.impl.propose(query, ctx)
            except MoaLabError as exc:
                return Proposal(agent.label, "", f"{type(exc).__name__}: {exc}")

        return list(await asyncio.gather(*(one(a) for a in agents)))

    async def _aggregate(self, query: str, proposals: Sequence[Proposal], result: QueryResult) -> Answer:
        agg = self.topology.aggregator
        if agg is None:
            only = proposals[0]
            return Answer(only.text, only.agent, 0)
        layer = len(self.topology.layers) + 1
        ctx = AgentContext(self.models, result.calls, agg.label, layer, 0, tuple(proposals), _history(result.sample))
        return await agg.impl.aggregate(query, proposals, ctx)

    async def stream(self, samples: Iterable[Sample], *, concurrency: int = 16) -> AsyncIterator[QueryResult]:
        """Run queries concurrently (at most `concurrency` in flight) and yield results as they finish.
        Per-endpoint limits still apply inside: this bounds memory and open queries, not calls."""
        pending: set[asyncio.Task[QueryResult]] = set()
        iterator = iter(samples)
        try:
            while True:
                while len(pending) < concurrency:
                    sample = next(iterator, None)
                    if sample is None:
                        break
                    pending.add(asyncio.ensure_future(self.run_query(sample)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()

    async def run(
        self,
        samples: Iterable[Sample],
        *,
        concurrency: int = 16,
        on_result: Callable[[QueryResult], None] | None = None,
    ) -> list[QueryResult]:
        """All results, in input order."""
        samples = list(samples)
        order = {id(s): i for i, s in enumerate(samples)}
        results: list[QueryResult | None] = [None] * len(samples)
        async for result in self.stream(samples, concurrency=concurrency):
            results[order[id(result.sample)]] = result
            if on_result is not None:
                on_result(result)
        return [r for r in results if r is not None]


async def run_async(
    spec: TopologySpec, samples: Iterable[Sample], models: ModelSet, *, concurrency: int = 16
) -> list[QueryResult]:
    """Run `spec` over `samples`; the caller owns (and closes) `models`."""
    return await Pipeline(spec, models).run(samples, concurrency=concurrency)


def run(spec: TopologySpec, samples: Iterable[Sample], models: ModelSet | None = None, *, concurrency: int = 16) -> list[QueryResult]:
    """The one synchronous door: run a topology over samples and close the models afterwards."""

    async def main() -> list[QueryResult]:
        owned = models or ModelSet()
        try:
            return await run_async(spec, samples, owned, concurrency=concurrency)
        finally:
            await owned.aclose()

    return asyncio.run(main())


def _history(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple((str(u), str(a)) for u, a in sample.metadata.get("history", ()))
