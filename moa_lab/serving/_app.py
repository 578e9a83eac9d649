"""The OpenAI-compatible ASGI app: `GET /v1/models` and `POST /v1/chat/completions` over a Service.

FastAPI is imported when an app is made, never with `import moa_lab`. (No `from __future__ import
annotations` here: FastAPI reads the route functions' annotations at runtime.)
"""

import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from moa_lab.serving._chat import ChatRequest, RequestError, SystemPolicy, completion_body, cost_headers, failure, stream_events, to_sample
from moa_lab.serving._served import Service

if TYPE_CHECKING:
    from fastapi import FastAPI

NO_RETRY = {"x-should-retry": "false"}
"""Tells OpenAI clients not to retry an answer that will not change (a spent budget, a bad key), or
a failed query whose calls the topology's models have already retried."""


def create_app(service: Service, *, api_key: str | None = None, system: SystemPolicy = "ignore") -> "FastAPI":
    """The app serving `service`. With `api_key`, every request must carry `Authorization: Bearer
    <api_key>` (compared in constant time) or gets 401. The service is closed when the app shuts
    down (after uvicorn has let the requests in flight finish)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.aclose()

    expected = api_key.encode() if api_key else None
    started = int(time.time())

    async def authorize(request: Request) -> None:
        if expected is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise RequestError(401, "missing or wrong API key: send Authorization: Bearer <key>", code="invalid_api_key")

    app = FastAPI(title="moa-lab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(authorize)])

    @app.exception_handler(RequestError)
    async def answer_error(_: Request, exc: RequestError) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.status in (401, 429, 502):
            headers |= NO_RETRY
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": started, "owned_by": "moa-lab"} for name in service.topologies]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = ChatRequest.parse(await request.body())
        served = service.topologies.get(body.model)
        if served is None:
            raise RequestError(404, f"model {body.model!r} is not served here; served: {', '.join(service.topologies)}",
                               code="model_not_found")
        record = await served.answer(to_sample(body, id=f"chatcmpl-{uuid.uuid4().hex}", system=system))
        if record.answer is None:
            raise failure(record)
        headers = cost_headers(record)
        created = int(record.started or time.time())
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = stream_events(record, model=body.model, created=created, include_usage=include_usage)

            async def send() -> AsyncIterator[str]:  # async: a plain iterator would go through a thread pool
                for event in events:
                    yield event

            return StreamingResponse(send(), media_type="text/event-stream", headers=headers)
        return JSONResponse(completion_body(record, model=body.model, created=created), headers=headers)

    return app
