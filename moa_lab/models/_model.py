"""`Model`: the one wrapper around a provider that adds cache, budget, concurrency, retry and cost."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from moa_lab.core import (
    BudgetExceeded,
    CallRecord,
    Completion,
    Cost,
    EndpointError,
    Message,
    ReplayMissing,
    Request,
    Sampling,
    Usage,
    gather_eager,
    shield_eager,
)
from moa_lab.models._budget import Admission, Budget, Reservation
from moa_lab.models._cache import CallCache, SharedCache, call_key
from moa_lab.models._client import BoundedClient, ModelClient
from moa_lab.models._pricing import Price, estimate_tokens, prompt_token_bound


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a server's Retry-After wins when it is longer."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        jittered = random.uniform(base / 2, base)
        return max(jittered, min(retry_after, self.max_backoff_s)) if retry_after else jittered

T = TypeVar("T")


class CacheOnly:
    """While set (see `cache_only`), every call is answered from the call cache or fails at once,
    unsent; `missed` says whether any call was not cached."""

    missed = False


_CACHE_ONLY: ContextVar[CacheOnly | None] = ContextVar("moa_lab_cache_only", default=None)


@contextlib.contextmanager
def cache_only() -> Iterator[CacheOnly]:
    """Run the calls made inside (in this task and the tasks it starts) from the cache only: no call
    is sent, nothing is reserved or paid; the yielded `CacheOnly` says whether any call missed."""
    only = CacheOnly()
    token = _CACHE_ONLY.set(only)
    try:
        yield only
    finally:
        _CACHE_ONLY.reset(token)


async def gather_calls(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await coroutines that call models (a layer's proposers, a judge's scores) concurrently, their
    results in order. While calls are answered from the cache only (see `cache_only`) each first
    runs in the caller until it waits (`core.gather_eager`): no Task per cached call. Otherwise as
    `asyncio.gather`: a call that may reach the network runs in its own Task from the start (HTTP
    clients tie their cancel scopes to the task that opened them)."""
    if _CACHE_ONLY.get() is not None:
        return await gather_eager(coros)
    return list(await asyncio.gather(*coros))


class Model:
    """A model on an endpoint. `call` never raises for endpoint or budget failures: it returns a
    CallRecord whose `error` says what happened, so traces keep every failure."""

    def __init__(
        self,
        ref: str,
        name: str,
        client: ModelClient,
        *,
        limiter: asyncio.Semaphore,
        price: Price,
        retry: RetryPolicy = RetryPolicy(),
        cache: CallCache | None = None,
        budget: Budget | None = None,
        prompt_overhead_tokens: int = 0,
    ) -> None:
        self.ref = ref
        self.name = name
        self.client = client
        self.price = price
        self.retry = retry
        self._limiter = limiter
        self._cache = cache
        self._budget = budget
        self._overhead = prompt_overhead_tokens
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._bounded = isinstance(client, BoundedClient)  # a runtime Protocol check is slow: once, not per call
        self._shared = isinstance(cache, SharedCache)

    async def call(
        self,
        messages: tuple[Message, ...],
        sampling: Sampling,
        *,
        prompt: str | None = None,
        sample_index: int = 0,
        agent: str = "",
        layer: int = 0,
        budget: Budget | Admission | None = None,
        stage: int = 0,
    ) -> CallRecord:
        """One call through cache -> budget reserve -> endpoint (with retries) -> settle.

        `budget`: the query's Admission the call draws from (default: the ModelSet's budget).
        `agent`, `layer` and `stage` (of a cascaded layer) only label the record."""
        request = Request(self.name, messages, sampling, prompt, sample_index)
        if prompt is not None:
            messages = (Message("user", prompt),)
        start = time.perf_counter()
        wall_start = time.time()
        only = _CACHE_ONLY.get()
        # once a cache-only attempt missed, its record is thrown away: the rest need not be looked up
        missed = only is not None and only.missed
        key = call_key(self.ref, request, sample_index) if self._cache is not None and not missed else None

        def record(completion: Completion | None, cached: bool, attempts: int, error: str | None) -> CallRecord:
            return CallRecord(
                agent=agent,
                model=self.ref,
                messages=messages,
                output=completion.text if completion else "",
                usage=completion.usage if completion else Usage(),
                cost=self.price.cost(completion.usage, paid=not cached) if completion else Cost(),
                latency_s=time.perf_counter() - start,
                cached=cached,
                attempts=attempts,
                error=error,
                layer=layer,
                stage=stage,
                started=wall_start,
                list_latency_s=completion.latency_s if completion else time.perf_counter() - start,
                sampling=sampling,
                sample_index=sample_index,
                prompt_form=prompt is not None,
            )

        if key is not None and (hit := self._cache.get(key)) is not None:  # type: ignore[union-attr]
            return record(hit, True, 0, None)
        if only is not None:  # answered from the cache or not at all
            only.missed = True
            return record(None, False, 0, "not in the call cache (a cache-only run)")
        if key is not None:
            pending = self._inflight.get(key)
            if pending is not None:  # an identical call is under way: share its answer, pay once
                try:
                    return record(await asyncio.shield(pending), True, 0, None)
                except Exception as exc:  # noqa: BLE001 - the owner records the failure; so does the sharer
                    return record(None, False, 0, _describe(exc))
            future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        claimed = False
        try:
            if key is not None and self._shared:
                answered = await self._claim(key)  # another process may be making this very call
                if answered is not None:
                    self._resolve(key, completion=answered)
                    return record(answered, True, 0, None)
                claimed = True
            began = time.perf_counter()
            completion, attempts = await self._call_endpoint(request, budget if budget is not None else self._budget, f"{layer}:{agent}")
            completion = replace(completion, latency_s=time.perf_counter() - began)
        except (EndpointError, BudgetExceeded, ReplayMissing) as exc:
            self._abandon(key, claimed, exc)
            attempts = exc.attempts if isinstance(exc, EndpointError) else int(isinstance(exc, ReplayMissing))
            return record(None, False, attempts, _describe(exc))
        except BaseException as exc:
            self._abandon(key, claimed, exc)
            raise
        if key is not None:
            try:
                self._cache.put(key, completion)  # type: ignore[union-attr]
            finally:  # sharers in this process get the answer even when the cache cannot keep it
                self._resolve(key, completion=completion)
        return record(completion, False, attempts, None)

    async def _claim(self, key: str) -> Completion | None:
        """Claim the call `key` in the shared cache (None: this process makes it), or wait while
        another live process holds the claim, and return the answer it stores."""
        cache = cast(SharedCache, self._cache)
        delay = 0.02
        while True:
            if cache.claim(key):
                hit = cache.get(key)  # stored between our miss and our claim
                if hit is not None:
                    cache.release(key)
                return hit
            await asyncio.sleep(delay)
            if (hit := cache.get(key)) is not None:
                return hit
            delay = min(delay * 2, 1.0)

    def _abandon(self, key: str | None, claimed: bool, exc: BaseException) -> None:
        """The call `key` ended without an answer: its sharers in this process get `exc`, and other
        processes may claim it."""
        if key is None:
            return
        self._resolve(key, exc=exc)
        if claimed:
            cast(SharedCache, self._cache).release(key)

    def _resolve(self, key: str, *, completion: Completion | None = None, exc: BaseException | None = None) -> None:
        future = self._inflight.pop(key)
        if exc is not None:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody may be sharing it
        else:
            future.set_result(completion)  # type: ignore[arg-type]

    def worst_case(self, request: Request, *, sample_index: int = 0, extra_input_tokens: int = 0) -> Reservation:
        """The most `request` may cost: prompt_token_bound of what is sent (plus `extra_input_tokens`)
        in, max_tokens (or a replay client's known answer length) out; nothing when it is cached."""
        return self.plan_call(request, sample_index=sample_index, extra_input_tokens=extra_input_tokens)[0]

    def plan_call(self, request: Request, *, sample_index: int = 0, extra_input_tokens: int = 0) -> tuple[Reservation, int]:
        """`worst_case` and the most output tokens the call may return: for a cached call, nothing
        and its cached answer's length (known, so a later layer's prompt is bounded by it)."""
        if self._cache is not None and (hit := self._cache.get(call_key(self.ref, request, sample_index))) is not None:
            return Reservation(0.0, 0), max(hit.usage.output_tokens, estimate_tokens(hit.text))
        worst_out = self.output_bound(request)
        return self._bound(request, extra_input_tokens, worst_out), worst_out

    def _bound(self, request: Request, extra_input_tokens: int = 0, worst_out: int | None = None) -> Reservation:
        """The most `request` may cost if it reaches the endpoint (`worst_out`: its output bound, if known)."""
        worst_in = prompt_token_bound(_shown(request), self._overhead) + extra_input_tokens
        worst_out = self.output_bound(request) if worst_out is None else worst_out
        return Reservation(self.price.worst_usd(worst_in, worst_out), worst_in + worst_out)

    def output_bound(self, request: Request) -> int:
        """The most output tokens `request` may return."""
        # a replayed answer's length is known before the call and ignores max_tokens
        return self.client.output_bound(request) if self._bounded else request.sampling.max_tokens  # type: ignore[attr-defined]

    async def _call_endpoint(self, request: Request, budget: Budget | Admission | None, key: str) -> tuple[Completion, int]:
        reservation = None
        if budget is not None:
            worst = self._bound(request)
            reservation = await budget.reserve(worst.usd, worst.tokens, key)
        spent_usd, spent_tokens = 0.0, 0
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    async with self._limiter:
                        completion = await self.client.complete(request)
                except EndpointError as exc:
                    if not exc.retryable or attempt >= self.retry.attempts:
                        exc.attempts = attempt
                        raise
                    await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))
                    continue
                spent_usd = self.price.cost(completion.usage).paid_usd
                spent_tokens = completion.usage.total_tokens
                return completion, attempt
        finally:
            if reservation is not None:
                await shield_eager(budget.settle(reservation, spent_usd, spent_tokens))  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"Model({self.ref!r})"


def _shown(request: Request) -> tuple[Message, ...]:
    return (Message("user", request.prompt),) if request.prompt is not None else request.messages


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
