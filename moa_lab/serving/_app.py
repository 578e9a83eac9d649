"""The OpenAI-compatible ASGI app: `GET /v1/models` and `POST /v1/chat/completions` over a Service.

`POST /v1/chat/completions` is answered by `ChatCompletions`, a bare ASGI app; everything else (the
model list, unknown paths, the lifespan that closes the Service) by a FastAPI app. The chat route
skips FastAPI's middleware, routing and parameter resolution: they cost 45% of a query's own CPU
work per request, which a burst of requests waits for one after another (docs/benchmarks.md,
"Serving overhead"). FastAPI and Starlette are imported when an app is made, never with `import
moa_lab`.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from moa_lab.serving._chat import ChatRequest, RequestError, SystemPolicy, completion_body, cost_headers, failure, stream_events, to_sample
from moa_lab.serving._served import Service

if TYPE_CHECKING:
    from starlette.responses import JSONResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHAT_PATH = "/v1/chat/completions"

NO_RETRY = {"x-should-retry": "false"}
"""Tells OpenAI clients not to retry an answer that will not change (a spent budget, a bad key), or
a failed query whose calls the topology's models have already retried."""


def create_app(service: Service, *, api_key: str | None = None, system: SystemPolicy = "ignore") -> ASGIApp:
    """The app serving `service`. With `api_key`, every request must carry `Authorization: Bearer
    <api_key>` (compared in constant time) or gets 401. The service is closed when the app shuts
    down (after uvicorn has let the requests in flight finish)."""
    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.aclose()

    started = int(time.time())
    api = FastAPI(title="moa-lab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": started, "owned_by": "moa-lab"} for name in service.topologies]
        return {"object": "list", "data": data}

    app = Routes(api, ChatCompletions(service, system))
    return BearerAuth(app, key=api_key) if api_key else app


class ChatCompletions:
    """`POST /v1/chat/completions`: the request's messages become a Sample, the named topology
    answers it (the RunLog records it), and the answer goes back as a `chat.completion` (or a stream
    of chunks), with what the query cost in the headers; a bad request, a spent budget or a failed
    query gets an OpenAI-style error instead."""

    def __init__(self, service: Service, system: SystemPolicy) -> None:
        self.service = service
        self.system = system

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:  # the client went away before its request was whole
            return
        try:
            if scope["method"] != "POST":
                raise RequestError(405, f"{scope['method']} {CHAT_PATH}: use POST", code="method_not_allowed")
            response = await self.respond(raw)
        except RequestError as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def respond(self, raw: bytes) -> Response:
        """The response to a request body; raises RequestError for an answer that is an error."""
        from starlette.responses import JSONResponse, StreamingResponse

        body = ChatRequest.parse(raw)
        served = self.service.topologies.get(body.model)
        if served is None:
            raise RequestError(404, f"model {body.model!r} is not served here; served: {', '.join(self.service.topologies)}",
                               code="model_not_found")
        record = await served.answer(to_sample(body, id=f"chatcmpl-{uuid.uuid4().hex}", system=self.system))
        if record.answer is None:
            raise failure(record)
        headers = cost_headers(record)
        created = int(record.started or time.time())
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = stream_events(record, model=body.model, created=created, include_usage=include_usage)

            async def chunks() -> AsyncIterator[str]:  # async: a plain iterator would go through a thread pool
                for event in events:
                    yield event

            return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)
        return JSONResponse(completion_body(record, model=body.model, created=created), headers=headers)


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body; None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class Routes:
    """Sends `/v1/chat/completions` to the chat app and everything else (the lifespan included) to
    the FastAPI app."""

    def __init__(self, api: ASGIApp, chat: ChatCompletions) -> None:
        self.api = api
        self.chat = chat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT_PATH:
            await self.chat(scope, receive, send)
        else:
            await self.api(scope, receive, send)


class BearerAuth:
    """A request without `Authorization: Bearer <key>` (compared in constant time) gets 401 and
    reaches no route."""

    def __init__(self, app: ASGIApp, *, key: str) -> None:
        self.app = app
        self.expected = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.expected):
                error = RequestError(401, "missing or wrong API key: send Authorization: Bearer <key>", code="invalid_api_key")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error_response(exc: RequestError) -> JSONResponse:
    """The OpenAI-style answer to `exc`: a 401 asks for a bearer token; a 401, 429 or 502 tells the
    client not to retry."""
    from starlette.responses import JSONResponse

    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.status in (401, 429, 502):
        headers |= NO_RETRY
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
