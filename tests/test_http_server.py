"""The local OpenAI-compatible test server, driven by the real `openai` client."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from moa_lab.testing import Fault, OpenAITestServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]


def by_model(body: dict[str, Any], attempt: int) -> Fault | None:
    """Faults chosen by model name; `flaky` fails its first two attempts with 429."""
    return {
        "rate": Fault("status", status=429, retry_after=1.5),
        "boom": Fault("status", status=500),
        "slow": Fault("timeout", delay=30.0),
        "garbled": Fault("malformed"),
        "flaky": Fault("status", status=429) if attempt < 2 else None,
    }.get(body["model"])


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(faults=by_model) as srv:
        yield srv


@pytest.fixture
async def client(server: OpenAITestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5.0)
    yield client
    await client.close()


async def chat(client: openai.AsyncOpenAI, model: str, **kwargs: Any) -> Any:
    return await client.chat.completions.create(model=model, messages=MESSAGES, **kwargs)  # type: ignore[arg-type]


async def test_chat_completion_returns_the_responder_text_and_word_usage() -> None:
    with OpenAITestServer(responder=lambda body: f"the answer of {body['model']} is here") as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=5.0)
        response = await chat(client, "m1", temperature=0.7, max_tokens=50)
        short = await chat(client, "m1", max_tokens=3)
        await client.close()
    assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
    assert response.object == "chat.completion" and response.model == "m1"
    assert response.choices[0].message.content == "the answer of m1 is here"
    assert response.choices[0].finish_reason == "stop"
    # 2 + 5 words, + 4 per message; the reply has 6 words
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (15, 6, 21)
    assert short.choices[0].message.content == "the answer of" and short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens == 3
    [first, second] = srv.calls
    assert (first.path, first.model, first.fault) == ("/v1/chat/completions", "m1", None)
    assert first.body["messages"] == MESSAGES and first.body["temperature"] == 0.7
    assert first.started <= first.finished <= second.started


async def test_default_responder_is_deterministic(client: openai.AsyncOpenAI) -> None:
    digest = hashlib.sha1(json.dumps(MESSAGES, sort_keys=True).encode()).hexdigest()[:8]
    first, second = await chat(client, "m1"), await chat(client, "m1")
    assert first.choices[0].message.content == second.choices[0].message.content == f"m1 says {digest}"


async def test_completions_endpoint(client: openai.AsyncOpenAI, server: OpenAITestServer) -> None:
    response = await client.completions.create(model="base", prompt="Once upon a time", max_tokens=20)
    digest = hashlib.sha1(json.dumps("Once upon a time").encode()).hexdigest()[:8]
    assert response.object == "text_completion"
    assert response.choices[0].text == f"base says {digest}" and response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (4 + 4, 3)
    assert server.calls[0].path == "/v1/completions" and server.calls[0].body["prompt"] == "Once upon a time"


async def test_models_endpoint(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["moa-lab-test"]


async def test_429_raises_rate_limit_error_with_retry_after_and_is_not_retried(
    client: openai.AsyncOpenAI, server: OpenAITestServer
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:  # max_retries=0: one request, Retry-After not waited out
        await chat(client, "rate")
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert caught.value.body == {"message": "injected fault: HTTP 429", "type": "rate_limit_error"}
    assert len(server.calls) == 1 and server.calls[0].fault == Fault("status", status=429, retry_after=1.5)


async def test_500_raises_internal_server_error(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(client, "boom")
    assert caught.value.status_code == 500 and "retry-after" not in caught.value.response.headers


async def test_malformed_body_raises_a_json_decode_error_not_an_api_error(client: openai.AsyncOpenAI) -> None:
    # openai parses an application/json body with response.json(): the decode error escapes unwrapped
    with pytest.raises(json.JSONDecodeError) as caught:
        await chat(client, "garbled")
    assert not isinstance(caught.value, openai.APIError)
    with pytest.raises(json.JSONDecodeError):
        await client.completions.create(model="garbled", prompt="x")


async def test_timeout_fault_raises_api_timeout_error_and_stop_is_prompt(server: OpenAITestServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):  # the client's 0.5 s timeout, not the handler's 30 s
        await chat(client, "slow")
    await client.close()
    [call] = server.calls
    assert call.fault is not None and call.fault.kind == "timeout" and call.finished != call.finished  # nan: unanswered
    start = time.perf_counter()
    server.stop()  # the handler still sleeps its 30 s
    assert time.perf_counter() - start < 20  # not waiting for it (a bound a busy machine keeps)


async def test_connection_refused_raises_api_connection_error() -> None:
    server = OpenAITestServer()
    base_url = server.start()
    server.stop()
    client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=2.0)
    with pytest.raises(openai.APIConnectionError) as caught:
        await chat(client, "m1")
    assert not isinstance(caught.value, openai.APITimeoutError)
    await client.close()


async def test_attempts_count_identical_bodies(client: openai.AsyncOpenAI, server: OpenAITestServer) -> None:
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            await chat(client, "flaky")
    assert (await chat(client, "flaky")).choices[0].message.content.startswith("flaky says")
    assert [c.fault is not None for c in server.calls] == [True, True, False]
    server.reset()
    assert server.calls == [] and server.max_in_flight == 0
    with pytest.raises(openai.RateLimitError):  # the counters restarted
        await chat(client, "flaky")


async def test_concurrent_requests_overlap() -> None:
    # no answer until all 20 are in the server at once: overlap shown without a wall-clock bound
    barrier = threading.Barrier(20, timeout=60)

    def reply(body: dict[str, Any]) -> str:
        barrier.wait()
        return f"{body['model']} answered"

    with OpenAITestServer(responder=reply) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=90.0)
        responses = await asyncio.gather(*(chat(client, f"m{i}") for i in range(20)))
        await client.close()
    assert srv.max_in_flight == 20 and len(srv.calls) == 20
    assert sorted(r.model for r in responses) == sorted(f"m{i}" for i in range(20))


def test_keep_alive_serves_many_requests_on_one_connection(server: OpenAITestServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.base_url.split(":")[2].split("/")[0]), timeout=5)
    for i in range(3):
        conn.request("POST", "/v1/chat/completions", json.dumps({"model": f"m{i}", "messages": MESSAGES}))
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["model"] == f"m{i}"
    conn.request("POST", "/v1/nowhere", "{}")
    response = conn.getresponse()
    assert response.status == 404 and "error" in json.loads(response.read())
    conn.request("POST", "/v1/completions", "not json")
    response = conn.getresponse()
    assert response.status == 400 and "error" in json.loads(response.read())
    conn.close()
    assert len(server.calls) == 3
