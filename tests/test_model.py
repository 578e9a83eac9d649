"""The Model wrapper: cache, single flight, retry with Retry-After, budget, cost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from moa_lab import Budget, Message, ModelSet, Sampling
from moa_lab.core import EndpointError
from moa_lab.models import MemoryCache, Price, PriceTable, SqliteCache
from moa_lab.testing._scripted import ScriptedClient

Q = (Message("user", "What is two plus two?"),)


def _models(client: ScriptedClient, tmp_path: Path, **kw: object) -> ModelSet:
    prices = PriceTable({"m": Price(1.0, 2.0, params_b=1.0)})
    return ModelSet(clients={"fake": client}, prices=prices, cache_dir=tmp_path, **kw)  # type: ignore[arg-type]


async def test_cost_is_usage_times_list_price(tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: "four")
    record = await _models(client, tmp_path).get("fake/m").call(Q, Sampling())
    assert record.usage.input_tokens == 5 + 4 and record.usage.output_tokens == 1
    assert record.cost.paid_usd == pytest.approx((9 * 1.0 + 1 * 2.0) / 1e6)
    assert record.cost.flops == pytest.approx(2 * 1e9 * 10)
    assert not record.cached and record.error is None


async def test_identical_call_is_served_by_the_cache_for_free(tmp_path: Path) -> None:
    client = ScriptedClient()
    model = _models(client, tmp_path, cache=SqliteCache(tmp_path / "c.sqlite")).get("fake/m")
    first = await model.call(Q, Sampling(temperature=0.7))
    second = await model.call(Q, Sampling(temperature=0.7))
    assert len(client.requests) == 1
    assert second.cached and second.cost.paid_usd == 0 and second.output == first.output
    other_sample = await model.call(Q, Sampling(temperature=0.7), sample_index=1)
    other_temp = await model.call(Q, Sampling(temperature=0.2))
    assert not other_sample.cached and not other_temp.cached and len(client.requests) == 3


async def test_concurrent_identical_calls_are_paid_once(tmp_path: Path) -> None:
    client = ScriptedClient(latency=0.05)
    model = _models(client, tmp_path, cache=MemoryCache()).get("fake/m")
    records = await asyncio.gather(*(model.call(Q, Sampling()) for _ in range(10)))
    assert len(client.requests) == 1
    assert sum(not r.cached for r in records) == 1


async def test_retry_honours_retry_after_then_succeeds(tmp_path: Path) -> None:
    def fail(request, attempt):  # type: ignore[no-untyped-def]
        return EndpointError("HTTP 429", status=429, retryable=True, retry_after=0.3) if attempt < 2 else None

    client = ScriptedClient(fail=fail)
    models = _models(client, tmp_path)
    model = models.get("fake/m")
    model.retry = type(model.retry)(attempts=4, backoff_s=0.01, max_backoff_s=5)
    start = time.perf_counter()
    record = await model.call(Q, Sampling())
    assert record.error is None and record.attempts == 3
    assert time.perf_counter() - start >= 0.6  # two waits of Retry-After 0.3 s, not the 10 ms backoff


async def test_failure_after_retries_is_recorded_not_raised(tmp_path: Path) -> None:
    client = ScriptedClient(fail=lambda r, a: EndpointError("HTTP 500: boom", status=500, retryable=True))
    model = _models(client, tmp_path, cache=MemoryCache()).get("fake/m")
    model.retry = type(model.retry)(attempts=3, backoff_s=0.001)
    record = await model.call(Q, Sampling())
    assert record.error == "EndpointError: HTTP 500: boom" and record.attempts == 3 and record.output == ""
    assert len(client.requests) == 3


async def test_non_retryable_error_is_not_retried(tmp_path: Path) -> None:
    client = ScriptedClient(fail=lambda r, a: EndpointError("HTTP 400: bad", status=400))
    record = await _models(client, tmp_path).get("fake/m").call(Q, Sampling())
    assert record.attempts == 1 and "HTTP 400" in (record.error or "")


async def test_budget_refusal_is_typed_and_recorded(tmp_path: Path) -> None:
    client = ScriptedClient()
    budget = Budget(usd=0.0005)
    model = _models(client, tmp_path, budget=budget).get("fake/m")
    record = await model.call(Q, Sampling(max_tokens=1000))  # worst case 2000 output tokens x $2/M = $0.002
    assert record.error is not None and record.error.startswith("BudgetExceeded")
    assert client.requests == [] and budget.spent_usd == 0 and budget.refused == 1


async def test_budget_settles_real_cost(tmp_path: Path) -> None:
    budget = Budget(usd=1.0, tokens=10_000)
    record = await _models(ScriptedClient(), tmp_path, budget=budget).get("fake/m").call(Q, Sampling(max_tokens=50))
    assert budget.spent_usd == pytest.approx(record.cost.paid_usd)
    assert budget.spent_tokens == record.usage.total_tokens
    assert budget.remaining_usd == pytest.approx(1.0 - record.cost.paid_usd)


def test_unknown_endpoint_and_missing_key_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moa_lab import ConfigError

    models = _models(ScriptedClient(), tmp_path)
    with pytest.raises(ConfigError, match="unknown endpoint 'fak'; did you mean 'fake'"):
        models.get("fak/m")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$OPENAI_API_KEY, which is not set"):
        models.check("openai/gpt-4o")


async def test_a_call_waits_for_calls_in_flight_instead_of_being_refused(tmp_path: Path) -> None:
    """Each call's worst case is 60% of the cap, its real cost far less: the second waits, then runs."""
    client = ScriptedClient(latency=0.1, responder=lambda r: "ok")
    worst = (len("What is two plus two?".encode()) + 4) * 1.0 + 100 * 2.0  # prompt bound + max_tokens, $/M
    budget = Budget(usd=worst / 1e6 / 0.6)
    model = _models(client, tmp_path, budget=budget).get("fake/m")
    first, second = await asyncio.gather(
        model.call(Q, Sampling(max_tokens=100)), model.call(Q, Sampling(max_tokens=100), sample_index=1)
    )
    assert first.error is None and second.error is None and budget.refused == 0
    assert budget.spent_usd <= budget.max_usd  # type: ignore[operator]


async def test_a_zero_budget_given_at_construction_refuses_the_first_call(tmp_path: Path) -> None:
    client = ScriptedClient()
    models = _models(client, tmp_path, budget=Budget(usd=0.0))
    record = await models.get("fake/m").call(Q, Sampling(max_tokens=8))
    assert record.error is not None and record.error.startswith("BudgetExceeded")
    assert client.requests == [] and models.budget is not None and models.budget.spent_usd == 0


def test_assigning_a_budget_after_construction_raises(tmp_path: Path) -> None:
    models = _models(ScriptedClient(), tmp_path)
    with pytest.raises(AttributeError, match="fixed at construction"):
        models.budget = Budget(usd=0.0)
    assert models.budget is None
