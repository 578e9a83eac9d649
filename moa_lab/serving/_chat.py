"""The OpenAI chat-completions wire format, translated to and from moa-lab's records (pure).

A request's messages become a Sample: the last user message is the input, the earlier user and
assistant turns become `Sample.history` (one Exchange per user turn and the answer after it), and
system messages are kept in `Sample.metadata["system"]` (shown to the agents only with
`system="prepend"`, see `to_sample`). A QueryRecord becomes a `chat.completion` (or a stream of
`chat.completion.chunk` events) whose `usage` is the sum over every call of the query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from moa_lab.core import Exchange, Sample
from moa_lab.tracking import QueryRecord

SystemPolicy = Literal["ignore", "prepend"]
"""What a request's system message does: `ignore` (kept in the RunLog, unseen by the agents, whose
own prompts the topology fixes) or `prepend` (put before the query, as a paragraph of the input)."""


class RequestError(Exception):
    """A request the server answers with an OpenAI-style error: HTTP `status`, `type` and `code`."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: `{"error": {"message", "type", "param", "code"}}`."""
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


class ChatMessage(BaseModel):
    """One message of a request; content is a string or a list of content parts."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields of a chat-completions request the server reads. Sampling fields (temperature,
    max_tokens, ...) are accepted and ignored: the served topology fixes its agents' sampling."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = None

    @classmethod
    def parse(cls, raw: bytes) -> ChatRequest:
        """Validate a request body; a malformed one is a 400 RequestError naming the first problem."""
        try:
            request = cls.model_validate_json(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "body"
            raise RequestError(400, f"invalid request: {where}: {error['msg']}") from None
        if request.n not in (None, 1):
            raise RequestError(400, "n must be 1: a topology gives one answer per query", code="unsupported_parameter")
        return request


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: a string, or its text parts joined by newlines (other parts are refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise RequestError(400, f"content part of type {part.get('type')!r}: only text is supported")
        parts.append(str(part.get("text", "")))
    return "\n".join(parts)


def to_sample(request: ChatRequest, *, id: str, system: SystemPolicy = "ignore") -> Sample:
    """The Sample a request asks about; consecutive messages of one role are joined."""
    system_texts = [text_of(m.content) for m in request.messages if m.role in ("system", "developer")]
    turns: list[tuple[str, str]] = []
    for m in request.messages:
        if m.role in ("system", "developer"):
            continue
        if m.role not in ("user", "assistant"):
            raise RequestError(400, f"message role {m.role!r}: only system, user and assistant are supported")
        text = text_of(m.content)
        if turns and turns[-1][0] == m.role:
            turns[-1] = (m.role, f"{turns[-1][1]}\n\n{text}")
        else:
            turns.append((m.role, text))
    if not turns or turns[-1][0] != "user":
        raise RequestError(400, "the last message must be the user's: it is the query the topology answers")
    if turns[0][0] == "assistant":  # a conversation the assistant opened
        turns.insert(0, ("user", ""))
    history = tuple(Exchange(turns[i][1], turns[i + 1][1]) for i in range(0, len(turns) - 1, 2))
    query = turns[-1][1]
    system_text = "\n\n".join(t for t in system_texts if t)
    if system == "prepend" and system_text:
        query = f"{system_text}\n\n{query}"
    metadata = {"system": system_text} if system_text else {}
    return Sample(query, id=id, metadata=metadata, history=history)


def usage_body(record: QueryRecord) -> dict[str, int]:
    """The OpenAI `usage` object: the tokens of every call of the query, cache hits included."""
    usage = record.usage
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens}


def cost_headers(record: QueryRecord) -> dict[str, str]:
    """What the query cost, as response headers: $ paid and at list price, calls and cache hits."""
    cost = record.cost
    return {"x-moa-cost-usd": f"{cost.paid_usd:.10g}", "x-moa-list-cost-usd": f"{cost.list_usd:.10g}",
            "x-moa-calls": str(len(record.calls)), "x-moa-cache-hits": str(sum(c.cached for c in record.calls)),
            "x-moa-latency-s": f"{record.latency_s:.4f}"}


def completion_body(record: QueryRecord, *, model: str, created: int) -> dict[str, Any]:
    """A `chat.completion` object carrying the topology's answer."""
    assert record.answer is not None, "a failed query is answered by failure(), not here"
    message = {"role": "assistant", "content": record.answer.text}
    return {"id": record.id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": usage_body(record)}


def stream_events(record: QueryRecord, *, model: str, created: int, include_usage: bool) -> Iterator[str]:
    """The answer as server-sent events in the `chat.completion.chunk` format, then `[DONE]`. The
    query has finished when streaming starts (an aggregator's answer is known whole), so the text
    comes in word-sized pieces and a final chunk carries `usage` when the client asked for it."""
    assert record.answer is not None
    base = {"id": record.id, "object": "chat.completion.chunk", "created": created, "model": model}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def event(delta: dict[str, Any], finish: str | None) -> str:
        chunk = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]} | extra
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""}, None)
    for piece in re.findall(r"\s*\S+|\s+$", record.answer.text) or [record.answer.text]:
        yield event({"content": piece}, None)
    yield event({}, "stop")
    if include_usage:
        yield f"data: {json.dumps(base | {'choices': [], 'usage': usage_body(record)})}\n\n"
    yield "data: [DONE]\n\n"


def failure(record: QueryRecord) -> RequestError:
    """The error a failed query is answered with: 429 `insufficient_quota` when the budget refused
    it (the message says the budget is spent and whether any model was called), else 502."""
    refusals = [c.error for c in record.calls if c.error and c.error.startswith("BudgetExceeded")]
    error = record.error or "the topology gave no answer"
    if error.startswith("BudgetExceeded") or refusals:
        paid = sum(1 for c in record.calls if c.error is None and not c.cached)
        detail = error.removeprefix("BudgetExceeded: ") if error.startswith("BudgetExceeded") else refusals[0].removeprefix("BudgetExceeded: ")
        called = "no model was called" if paid == 0 else f"{paid} call(s) had been made before the refusal"
        return RequestError(429, f"the budget of this server is spent ({detail}); {called}",
                            type="insufficient_quota", code="budget_exceeded")
    return RequestError(502, f"the topology failed: {error}", type="server_error", code="topology_failed")
