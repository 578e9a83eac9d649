"""A 3-layer MoA over a real local OpenAI-compatible HTTP server with injected failures."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from moa_lab import Budget, ModelSet, Pipeline, Sample, preset
from moa_lab.agents import references_block
from moa_lab.models import EndpointConfig, MemoryCache, Price, PriceTable
from moa_lab.testing import Fault, OpenAITestServer

PROPOSERS = [f"p{i}" for i in range(6)]


def reply(body: dict) -> str:
    digest = hashlib.sha1(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()[:6]
    return f"answer of {body['model']} {digest}"


def faults(body: dict, attempt: int) -> Fault | None:
    model = body["model"]
    if model == "p1" and attempt == 0:
        return Fault("status", status=429, retry_after=0.3)
    if model == "p2" and attempt == 0:
        return Fault("status", status=500)
    if model == "p3" and attempt == 0:
        return Fault("timeout", delay=5.0)
    if model == "p4" and attempt == 0:
        return Fault("malformed")
    if model == "p5":
        return Fault("status", status=503)
    return None


def served_usage(body: dict, text: str) -> tuple[int, int]:
    """The test server's documented usage rule: words + 4 per message; reply words."""
    messages = body["messages"]
    return sum(len(m["content"].split()) for m in messages) + 4 * len(messages), len(text.split())


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with OpenAITestServer(latency=0.05, responder=reply, faults=faults) as srv:
        yield srv


def test_three_layer_moa_with_failures(server: OpenAITestServer, tmp_path: Path) -> None:
    prices = PriceTable({m: Price(0.5 + i, 1.5 + i) for i, m in enumerate([*PROPOSERS, "agg"])})
    endpoint = EndpointConfig(kind="openai", base_url=server.base_url, timeout_s=1.0, retries=3, backoff_s=0.05, concurrency=8)
    models = ModelSet({"srv": endpoint}, prices=prices, cache=MemoryCache(), cache_dir=tmp_path)
    spec = preset("moa", proposers=[f"srv/{m}" for m in PROPOSERS], layers=3, aggregator="srv/agg", max_tokens=50)

    async def go():  # type: ignore[no-untyped-def]
        async with models:
            return await asyncio.wait_for(Pipeline(spec, models).run_query(Sample("Why is the sky blue?")), timeout=60)

    result = asyncio.run(go())
    assert result.error is None, result.error

    # p5 always fails: retried, then recorded; the other five answer in both layers
    for layer in result.layers:
        assert [p.ok for p in layer] == [True] * 5 + [False]
        assert "HTTP 503" in (layer[5].error or "")
    failed = [c for c in result.calls if c.error]
    assert len(failed) == 2 and all(c.attempts == 3 and c.model == "srv/p5" for c in failed)
    by_model = {}
    for c in result.calls:
        by_model.setdefault(c.model, []).append(c)
    for m in ("p1", "p2", "p3", "p4"):  # one transient failure each (429, 500, timeout, malformed), then success
        assert [c.attempts for c in by_model[f"srv/{m}"]] == [2, 2]
        assert all(c.error is None for c in by_model[f"srv/{m}"])

    # the 429 was retried no sooner than its Retry-After
    p1 = sorted((c for c in server.calls if c.model == "p1" and not c.body.get("messages", [{}])[0].get("role") == "system"), key=lambda c: c.started)
    assert p1[1].started - p1[0].finished >= 0.29

    # every later layer received every previous good answer in the paper's format
    layer1 = [p.text for p in result.layers[0] if p.ok]
    layer2 = [p.text for p in result.layers[1] if p.ok]
    l2_bodies = [c.body for c in server.calls if c.fault is None and c.body["messages"][0]["role"] == "system" and c.model != "agg"]
    assert len(l2_bodies) == 5 and all(b["messages"][0]["content"] == references_block(layer1) for b in l2_bodies)
    [agg_body] = [c.body for c in server.calls if c.model == "agg"]
    assert agg_body["messages"][0]["content"] == references_block(layer2)
    assert agg_body["messages"][1] == {"role": "user", "content": "Why is the sky blue?"}
    assert result.answer is not None and result.answer.text == reply(agg_body)

    # usage is the endpoint's, cost is usage x list price, per call, and the totals add up
    good = {json.dumps(c.body["messages"], sort_keys=True) + c.model: c.body for c in server.calls if c.fault is None}
    for call in result.calls:
        if call.error:
            assert call.usage.total_tokens == 0 and call.cost.paid_usd == 0
            continue
        body = good[json.dumps([m.to_dict() for m in call.messages], sort_keys=True) + call.model.split("/")[1]]
        assert (call.usage.input_tokens, call.usage.output_tokens) == served_usage(body, call.output)
        price = prices.get(call.model.split("/")[1])
        assert call.cost.paid_usd == pytest.approx((call.usage.input_tokens * price.input_per_mtok + call.usage.output_tokens * price.output_per_mtok) / 1e6)
    assert result.cost.paid_usd == pytest.approx(sum(c.cost.paid_usd for c in result.calls))
    assert result.usage.total_tokens == sum(c.usage.total_tokens for c in result.calls)


def test_fifty_concurrent_queries_never_exceed_the_cap_nor_pay_for_unfinished_ones(tmp_path: Path) -> None:
    """50 queries of a 3-layer MoA, all in flight at once, under a cap that pays for 20: each query
    is admitted on its whole worst case or never starts, so no money goes to a query that does not
    finish. The counts follow from the amounts alone, whatever the scheduling (deterministic under load)."""
    with OpenAITestServer(latency=0.05, responder=lambda body: "a short answer of five words") as srv:
        prices = PriceTable({m: Price(10.0, 30.0) for m in ("a", "b", "c", "agg")})
        endpoint = EndpointConfig(kind="openai", base_url=srv.base_url, concurrency=64)
        spec = preset("moa", proposers=["srv/a", "srv/b", "srv/c"], aggregator="srv/agg", max_tokens=20, layers=3)
        # price one query: run it alone, uncapped
        probe = ModelSet({"srv": endpoint}, prices=prices, cache_dir=tmp_path)
        one = asyncio.run(Pipeline(spec, probe).run_query(Sample("query probe")))
        worst = asyncio.run(Pipeline(spec, probe).plan(Sample("query 0")))
        cap = 20 * one.cost.paid_usd
        srv.reset()
        budget = Budget(usd=cap)
        models = ModelSet({"srv": endpoint}, prices=prices, budget=budget, cache_dir=tmp_path)
        results = asyncio.run(Pipeline(spec, models).run([Sample(f"query {i}") for i in range(50)], concurrency=50))
        served = len(srv.calls)
    spent = sum(r.cost.paid_usd for r in results)
    completed = [r for r in results if r.error is None]
    unfinished = [r for r in results if r.error is not None]
    assert budget.spent_usd == pytest.approx(spent) and spent <= cap
    assert budget.reserved_usd == pytest.approx(0, abs=1e-12)  # every admission released
    assert sum(r.cost.paid_usd for r in unfinished) == 0 and all(not r.calls for r in unfinished)
    assert all(r.error.startswith("BudgetExceeded: query not started") for r in unfinished)  # type: ignore[union-attr]
    assert served == 7 * len(completed)  # 3 + 3 proposers and an aggregator per finished query, nothing else
    # admission refuses only when spent + one worst case passes the cap, so the spend reaches cap - worst
    assert len(completed) >= (cap - worst.usd) / one.cost.paid_usd >= 14
    assert len(completed) >= 15, len(completed)

def test_fifty_judged_queries_are_admitted_with_their_judge_calls(tmp_path: Path) -> None:
    """As above, with an AlpacaEval-style pairwise judge (two calls per answer, on a pricier model
    allowed long verdicts) scoring each query through `evaluate`: a query is admitted on its
    topology's and its judge's worst case together, so every query that starts is also judged,
    the judge is never refused, and no money goes to a query left unscored."""
    from moa_lab.evaluation import evaluate
    from moa_lab.scoring import PairwiseJudge, Scoring
    from moa_lab.tracking import read_runlog

    def respond(body: dict) -> str:
        return "M" if body["model"] == "judge" else "a short answer of five words"

    with OpenAITestServer(latency=0.05, responder=respond) as srv:
        prices = PriceTable({**{m: Price(10.0, 30.0) for m in ("a", "b", "c", "agg")}, "judge": Price(30.0, 60.0)})
        endpoint = EndpointConfig(kind="openai", base_url=srv.base_url, concurrency=64)
        spec = preset("moa", proposers=["srv/a", "srv/b", "srv/c"], aggregator="srv/agg", max_tokens=20, layers=3)
        judge = PairwiseJudge("srv/judge", "reference", both_orders=True, max_tokens=256)
        samples = [Sample(f"query {i}", id=f"q{i}", metadata={"reference": "the reference answer to compare with"})
                   for i in range(50)]

        def judged(budget: Budget | None, name: str, todo: list[Sample]) -> list:  # type: ignore[type-arg]
            models = ModelSet({"srv": endpoint}, prices=prices, budget=budget, cache_dir=tmp_path)
            asyncio.run(evaluate(spec, todo, models, judge, runlog=tmp_path / f"{name}.jsonl", concurrency=50))
            return read_runlog(tmp_path / f"{name}.jsonl").records

        [one] = judged(None, "probe", [Sample("query probe", id="probe", metadata=samples[0].metadata)])
        assert one.score is not None and len(one.judge_calls) == 2
        probe = ModelSet({"srv": endpoint}, prices=prices, cache_dir=tmp_path)
        worst = asyncio.run(Pipeline(spec, probe, scoring=Scoring(judge)).plan(samples[0]))
        assert len(worst.calls["0:judge"]) == 2  # both orders planned
        cap = 20 * one.total_cost.paid_usd
        srv.reset()
        budget = Budget(usd=cap)
        records = judged(budget, "capped", samples)
        served = srv.calls
    spent = sum(r.total_cost.paid_usd for r in records)
    completed = [r for r in records if r.error is None]
    unfinished = [r for r in records if r.error is not None]
    assert budget.spent_usd == pytest.approx(spent) and spent <= cap
    assert budget.reserved_usd == pytest.approx(0, abs=1e-12)
    assert all(r.error.startswith("BudgetExceeded: query not started") for r in unfinished)  # type: ignore[union-attr]
    assert sum(r.total_cost.paid_usd for r in unfinished) == 0 and all(not r.calls and not r.judge_calls for r in unfinished)
    # every query that started was judged, both orders, and no judge call was refused
    assert all(r.score is not None and len(r.judge_calls) == 2 and not any(c.error for c in r.judge_calls) for r in completed)
    assert sum(c.model == "judge" for c in served) == 2 * len(completed) and len(served) == 9 * len(completed)
    # admission refuses only when spent + one worst case (judge included) passes the cap
    assert len(completed) >= (cap - worst.usd) / one.total_cost.paid_usd
    print(f"cap ${cap:.6f} (20 judged queries), worst case ${worst.usd:.6f} a query; {len(completed)} of 50 judged, "
          f"spend ${spent:.6f}, $0 on the {len(unfinished)} not started")
