"""The narrow provider interface: one async call that turns a Request into a Completion."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from moa_lab.core import Completion, Request


@runtime_checkable
class ModelClient(Protocol):
    """A provider. It only translates requests and responses and raises EndpointError on failure;
    retries, cache, concurrency, cost and budget live in `Model`."""

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BoundedClient(ModelClient, Protocol):
    """A provider that knows how long an answer will be before making the call (replay): the budget
    reserves this bound instead of `max_tokens`."""

    def output_bound(self, request: Request) -> int: ...
