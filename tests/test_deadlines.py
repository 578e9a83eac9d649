"""Deadlines and Retry-After on a real local server: `timeout_s` bounds the whole attempt."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from moa_lab.core import Message, Sampling
from moa_lab.models import EndpointConfig, MemoryCache, ModelSet, Price, PriceTable
from moa_lab.models.providers.openai import _retry_after
from moa_lab.testing import Fault, OpenAITestServer

QUESTION = (Message("user", "Why is the sky blue?"),)


def call(server: OpenAITestServer, tmp_path: Path, **endpoint: object):  # type: ignore[no-untyped-def]
    config = EndpointConfig(kind="openai", base_url=server.base_url, **endpoint)  # type: ignore[arg-type]
    models = ModelSet({"srv": config}, prices=PriceTable({"m": Price(1.0, 2.0)}), cache=MemoryCache(), cache_dir=tmp_path)

    async def go():  # type: ignore[no-untyped-def]
        async with models:
            model = models.get("srv/m")  # builds the client (imports openai) before the clock starts
            start = time.perf_counter()
            record = await model.call(QUESTION, Sampling(max_tokens=20))
            return record, time.perf_counter() - start

    return asyncio.run(go())


def test_a_server_trickling_a_byte_a_second_is_cut_off_by_timeout_s(tmp_path: Path) -> None:
    # Must show 5: headers at once, then one byte a second; timeout_s 2 and 2 retries (3 attempts)
    with OpenAITestServer(faults=lambda body, attempt: Fault("trickle", interval=1.0)) as server:
        record, elapsed = call(server, tmp_path, timeout_s=2.0, retries=3, backoff_s=0.05, max_backoff_s=0.1)
        assert len(server.calls) == 3
    assert record.error is not None and "timed out after 2 s" in record.error and record.attempts == 3
    assert elapsed < 10.0, elapsed
    assert elapsed >= 6.0, elapsed  # each attempt really waited its 2 s


def test_a_trickled_answer_within_the_deadline_is_read_whole(tmp_path: Path) -> None:
    fault = Fault("trickle", interval=0.001)
    with OpenAITestServer(faults=lambda body, attempt: fault, responder=lambda body: "slowly but surely") as server:
        record, _ = call(server, tmp_path, timeout_s=20.0, retries=1)
    assert record.error is None and record.output == "slowly but surely"


def test_retry_after_as_an_http_date_is_honoured(tmp_path: Path) -> None:
    def faults(body: dict, attempt: int) -> Fault | None:
        return Fault("status", status=429, retry_after=2.0, retry_after_date=True) if attempt == 0 else None

    with OpenAITestServer(faults=faults) as server:
        record, _ = call(server, tmp_path, retries=2, backoff_s=0.01, max_backoff_s=30.0)
        first, second = server.calls
    assert record.error is None and record.attempts == 2
    # an HTTP date has whole seconds: 2 s ahead is at least 1 s ahead once rounded down
    assert second.started - first.finished >= 1.0


def test_retry_after_parsing() -> None:
    assert _retry_after("1.5") == 1.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now
    ahead = _retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60)))
    assert ahead is not None and 58 <= ahead <= 60
