"""A deterministic model client for tests of the layers above the providers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from moa_lab.core import Completion, EndpointError, Request, Usage


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class ScriptedClient:
    """Answers with `responder(request)` (default: `"<model> answer"`), after `latency` seconds.

    Usage is counted in words (prompt words + 4 per message; reply words) so tests can check sums.
    `fail(request, attempt)` may return an EndpointError to raise for that attempt.
    Every request is kept in `requests`.
    """

    responder: Callable[[Request], str] | None = None
    latency: float = 0.0
    fail: Callable[[Request, int], EndpointError | None] | None = None
    requests: list[Request] = field(default_factory=list)
    _attempts: dict[Request, int] = field(default_factory=dict)

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        attempt = self._attempts.get(request, 0)
        self._attempts[request] = attempt + 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fail is not None:
            error = self.fail(request, attempt)
            if error is not None:
                raise error
        text = self.responder(request) if self.responder else f"{request.model} answer"
        words = text.split()
        finish = "stop"
        if len(words) > request.sampling.max_tokens:
            text, finish = " ".join(words[: request.sampling.max_tokens]), "length"
        prompt = request.prompt if request.prompt is not None else " ".join(m.content for m in request.messages)
        usage = Usage(_words(prompt) + 4 * max(1, len(request.messages)), _words(text))
        return Completion(text, usage, finish)

    async def aclose(self) -> None:
        return None
