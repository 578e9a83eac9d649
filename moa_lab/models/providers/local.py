"""The embedded default: Gemma 3 270M served on 127.0.0.1 by xllamacpp, started on first use."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from moa_lab.core import Completion, Request
from moa_lab.models.providers._embedded import DEFAULT_MODEL, EmbeddedServer, EmbeddedServerConfig
from moa_lab.models.providers._template import CompletionTemplate
from moa_lab.models.providers.openai import OpenAIClient

PROMPT_OVERHEAD_TOKENS = 256
"""Upper bound on the tokens the template adds to a conversation (its default examples)."""


class LocalClient:
    """Starts the embedded server on the first call (so a fully cached run never starts it),
    renders chat requests as few-shot completion prompts and stops the server on `aclose`."""

    def __init__(self, config: EmbeddedServerConfig, *, template: CompletionTemplate = CompletionTemplate()) -> None:
        self.config = config
        self.template = template
        self._server: EmbeddedServer | None = None
        self._client: OpenAIClient | None = None
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> OpenAIClient:
        async with self._lock:
            if self._client is None:
                self._server = EmbeddedServer(self.config)
                base_url = await asyncio.to_thread(self._server.start)
                self._client = OpenAIClient(base_url, "embedded", timeout=300.0)
            return self._client

    async def complete(self, request: Request) -> Completion:
        client = await self._ensure_started()
        prompt = request.prompt if request.prompt is not None else self.template.render(request.messages)
        sampling = request.sampling if request.sampling.stop else replace(request.sampling, stop=("\n",))
        return await client.complete(Request(request.model, (), sampling, prompt))

    @property
    def started(self) -> bool:
        return self._client is not None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None


def default_config(cache_dir: Path, slots: int, ctx_per_slot: int = 2048, threads: int | None = None) -> EmbeddedServerConfig:
    return EmbeddedServerConfig(cache_dir=cache_dir, slots=max(1, slots), ctx_per_slot=ctx_per_slot, threads=threads)


__all__ = ["DEFAULT_MODEL", "LocalClient", "PROMPT_OVERHEAD_TOKENS", "default_config"]
