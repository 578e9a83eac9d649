"""`moa_lab.serving` through the real `openai` client: a topology served over HTTP whose models are a
real local OpenAI-compatible test server (no mock of either side)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from moa_lab import Budget, ModelSet, Pipeline, Sample, preset
from moa_lab.core import Exchange
from moa_lab.models import EndpointConfig, MemoryCache, Price, PriceTable
from moa_lab.serving import BackgroundServer, ChatRequest, RequestError, ServedTopology, Service, create_app, to_sample
from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import read_runlog

PRICES = PriceTable({"a": Price(1.0, 2.0), "b": Price(1.5, 2.5), "agg": Price(3.0, 4.0)})


@contextmanager
def served(tmp_path: Path, backend: OpenAITestServer, *, api_key: str | None = None, budget: Budget | None = None,
           system: str = "ignore") -> Iterator[tuple[BackgroundServer, ServedTopology]]:
    """The `mix` topology (two proposers and an aggregator on `backend`) served on a free port."""
    endpoint = EndpointConfig(kind="openai", base_url=backend.base_url, timeout_s=10, retries=2, backoff_s=0.01)
    models = ModelSet({"srv": endpoint}, prices=PRICES, cache=MemoryCache(), budget=budget, cache_dir=tmp_path)
    spec = preset("moa", proposers=["srv/a", "srv/b"], layers=2, aggregator="srv/agg", max_tokens=32)
    topology = ServedTopology("mix", spec, models, runlog=tmp_path / "runs" / "served.jsonl", experiment="test")
    app = create_app(Service({"mix": topology}, [models]), api_key=api_key, system=system)  # type: ignore[arg-type]
    with BackgroundServer(app) as server:
        yield server, topology


@pytest.fixture
def backend() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as srv:
        yield srv


def test_openai_client_gets_the_answer_and_usage_is_the_runlog_sum(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path, backend) as (server, topology):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["mix"]
        raw = client.chat.completions.with_raw_response.create(model="mix", messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"}])
        reply = raw.parse()
    record = read_runlog(topology.runlog).records[0]
    assert reply.choices[0].message.content == record.answer.text and record.answer.text.startswith("agg says ")
    assert len(record.calls) == 3 and len(backend.calls) == 3
    usage = record.usage
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    assert reply.usage.prompt_tokens == sum(c.usage.input_tokens for c in record.calls) > 0
    assert float(raw.headers["x-moa-cost-usd"]) == pytest.approx(record.cost.paid_usd) and record.cost.paid_usd > 0
    assert float(raw.headers["x-moa-list-cost-usd"]) == pytest.approx(record.cost.list_usd)
    assert (raw.headers["x-moa-calls"], raw.headers["x-moa-cache-hits"]) == ("3", "0")
    # the earlier turns reach the proposers as history, the system message stays in the RunLog only
    assert record.sample.input == "Another one?" and record.sample.history == (Exchange("Name a colour.", "Blue."),)
    assert record.sample.metadata == {"system": "Answer briefly."}
    first = backend.calls[0].body["messages"]
    assert [m["content"] for m in first] == ["Name a colour.", "Blue.", "Another one?"]


def test_a_repeated_request_is_answered_from_the_cache(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path, backend) as (server, _):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        ask = {"model": "mix", "messages": [{"role": "user", "content": "Same question"}]}
        client.chat.completions.create(**ask)
        again = client.chat.completions.with_raw_response.create(**ask)
    assert (again.headers["x-moa-cache-hits"], again.headers["x-moa-cost-usd"]) == ("3", "0")
    assert len(backend.calls) == 3


def test_streaming_yields_the_answer_and_the_usage(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path, backend) as (server, topology):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        chunks = list(client.chat.completions.create(model="mix", messages=[{"role": "user", "content": "Stream it"}],
                                                     stream=True, stream_options={"include_usage": True}))
    record = read_runlog(topology.runlog).records[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == record.answer.text and len([c for c in chunks if c.choices]) > 2
    assert chunks[-1].usage.total_tokens == record.usage.total_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_twenty_concurrent_requests_are_all_answered(tmp_path: Path) -> None:
    with OpenAITestServer(latency=0.05) as backend, served(tmp_path, backend) as (server, topology):
        async def go() -> list[str]:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as client:
                replies = await asyncio.gather(*(client.chat.completions.create(
                    model="mix", messages=[{"role": "user", "content": f"Question {i}"}]) for i in range(20)))
            return [r.choices[0].message.content for r in replies]

        answers = asyncio.run(go())
    assert len(answers) == 20 and all(a.startswith("agg says ") for a in answers)
    assert len(read_runlog(topology.runlog).records) == 20
    assert backend.max_in_flight > 2  # the queries overlapped


def test_a_second_topology_uses_the_served_one_as_a_proposer(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path / "inner", backend) as (server, inner):
        endpoints = {"served": EndpointConfig(kind="openai", base_url=server.base_url, timeout_s=10),
                     "srv": EndpointConfig(kind="openai", base_url=backend.base_url, timeout_s=10)}
        outer = preset("moa", proposers=["served/mix", "srv/a"], layers=2, aggregator="srv/agg", max_tokens=32)

        async def go():  # type: ignore[no-untyped-def]
            async with ModelSet(endpoints, prices=PRICES, cache=MemoryCache(), cache_dir=tmp_path) as models:
                return await Pipeline(outer, models).run_query(Sample("A mixture of mixtures?"))

        record = asyncio.run(go())
    assert record.error is None and record.answer is not None
    via_server = next(c for c in record.calls if c.model == "served/mix")
    inner_record = read_runlog(inner.runlog).records[0]
    assert via_server.output == inner_record.answer.text
    assert via_server.usage == inner_record.usage  # the served model reports every inner call's tokens


def test_without_the_bearer_token_every_request_is_refused(tmp_path: Path, backend: OpenAITestServer) -> None:
    key = "sk-serve-test-0123456789"
    with served(tmp_path, backend, api_key=key) as (server, topology):
        for wrong in ("unused", key + "x", ""):
            client = openai.OpenAI(base_url=server.base_url, api_key=wrong or "-", max_retries=0)
            with pytest.raises(openai.AuthenticationError) as caught:
                client.chat.completions.create(model="mix", messages=[{"role": "user", "content": "hi"}])
            assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
        assert http_error(f"{server.base_url}/nothing-here")[0] == 401  # no route answers without the key
        assert http_error(f"{server.base_url}/nothing-here", {"Authorization": f"bearer  {key}"})[0] == 404
        ok = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        assert ok.chat.completions.create(model="mix", messages=[{"role": "user", "content": "hi"}]).choices
    assert len(backend.calls) == 3  # only the authorised request reached a model
    assert key not in topology.runlog.read_text()


def test_a_spent_budget_is_a_429_and_no_call_is_made(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path, backend, budget=Budget(usd=1e-6)) as (server, topology):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")  # default retries: the 429 says not to
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="mix", messages=[{"role": "user", "content": "Too dear"}])
    error = caught.value
    assert error.status_code == 429 and error.code == "budget_exceeded" and error.type == "insufficient_quota"
    assert "budget of this server is spent" in error.message and "no model was called" in error.message
    assert backend.calls == []
    assert len(read_runlog(topology.runlog).records) == 1  # one request: the client did not retry


def test_bad_requests_get_openai_style_errors(tmp_path: Path, backend: OpenAITestServer) -> None:
    with served(tmp_path, backend) as (server, _):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.NotFoundError, match="not served here; served: mix"):
            client.chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.BadRequestError, match="last message must be the user's"):
            client.chat.completions.create(model="mix", messages=[{"role": "assistant", "content": "hi"}])
        status, error = http_error(f"{server.base_url}/chat/completions", data=b"{not json")
        assert status == 400 and error["error"]["message"].startswith("invalid request: body")
        status, error = http_error(f"{server.base_url}/chat/completions")  # a GET
        assert status == 405 and error["error"]["code"] == "method_not_allowed"
        assert http_error(f"{server.base_url}/nothing-here")[0] == 404
    assert backend.calls == []


def http_error(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    """The status and JSON body of a request that fails (a POST of `data`, else a GET)."""
    import json
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10)
    return caught.value.code, json.loads(caught.value.read())


def test_messages_become_a_sample() -> None:
    request = ChatRequest.parse(b'{"model": "m", "messages": ['
                                b'{"role": "system", "content": "Be brief."},'
                                b'{"role": "assistant", "content": "Hello."},'
                                b'{"role": "user", "content": [{"type": "text", "text": "Part one."}]},'
                                b'{"role": "user", "content": "Part two."}]}')
    sample = to_sample(request, id="q1")
    assert sample == Sample("Part one.\n\nPart two.", id="q1", metadata={"system": "Be brief."},
                            history=(Exchange("", "Hello."),))
    assert to_sample(request, id="q1", system="prepend").input == "Be brief.\n\nPart one.\n\nPart two."
    with pytest.raises(RequestError, match="n must be 1"):
        ChatRequest.parse(b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}')
    with pytest.raises(RequestError, match="messages"):
        ChatRequest.parse(b'{"model": "m"}')


def test_a_query_the_budget_refused_whole_maps_to_429() -> None:
    from moa_lab.serving._chat import failure
    from moa_lab.tracking import QueryRecord

    # per-query admission refuses before any call: the record's error starts with BudgetExceeded
    refused = failure(QueryRecord(sample=Sample("q", id="r1"), error="BudgetExceeded: budget $0.0100: spent $0.0100"))
    assert (refused.status, refused.type, refused.code) == (429, "insufficient_quota", "budget_exceeded")
    assert "spent $0.0100" in refused.message and "no model was called" in refused.message
    other = failure(QueryRecord(sample=Sample("q", id="r2"), error="AggregationError: every proposal failed (a: HTTP 500)"))
    assert (other.status, other.code) == (502, "topology_failed")


def test_load_service_names_experiments_and_topologies(tmp_path: Path, backend: OpenAITestServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from moa_lab.core import ConfigError
    from moa_lab.serving import load_service

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "cache"))
    experiment = {"name": "pair", "endpoints": {"srv": {"kind": "openai", "base_url": backend.base_url}},
                  "topologies": {"mix": {"preset": "moa", "proposers": ["srv/a", "srv/b"], "layers": 2, "aggregator": "srv/agg"},
                                 "one": {"preset": "single", "model": "srv/a"}}}
    (tmp_path / "pair.yaml").write_text(yaml.safe_dump(experiment))
    service = load_service([str(tmp_path / "pair.yaml"), "self-moa"], output=tmp_path / "runs")
    try:
        assert list(service.topologies) == ["pair/mix", "pair/one", "self-moa"]
        assert service.topologies["pair/mix"].runlog.name == "served__mix.jsonl"
        assert service.topologies["self-moa"].runlog.parent.parent == tmp_path / "runs" / "self-moa"
    finally:
        asyncio.run(service.aclose())
    assert all((f / "FINISHED").exists() for f in service.folders)
    with pytest.raises(ConfigError, match="two topologies are named 'self-moa'"):
        load_service(["self-moa", "self-moa"], output=tmp_path / "runs")


def test_a_failed_query_is_a_502_the_client_does_not_retry(tmp_path: Path) -> None:
    from moa_lab.testing import Fault

    with OpenAITestServer(faults=lambda body, attempt: Fault("status", status=500)) as backend, \
            served(tmp_path, backend) as (server, topology):
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")  # default retries
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="mix", messages=[{"role": "user", "content": "Fails"}])
    assert caught.value.status_code == 502 and caught.value.code == "topology_failed"
    assert "HTTP 500" in caught.value.message
    assert len(read_runlog(topology.runlog).records) == 1  # retried by the models (2 attempts each), not the client
    assert len(backend.calls) == 2 * 2
