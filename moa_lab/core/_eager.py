"""`gather`, but each coroutine first runs in the caller until it suspends.

A proposer whose call is answered from the cache (a replayed study, a resumed run) never waits for
anything, and an asyncio Task per such call costs more than the call. Python 3.12's eager task
factory does this for a whole loop; this does it where the engine fans out, on 3.11 too. A
coroutine that does suspend continues in an ordinary Task, awaiting exactly what it was awaiting.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def gather_eager(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Results in order, as `asyncio.gather(*coros)` gives them. Every coroutine is started (run up
    to its first suspension) before any is awaited, so they still run concurrently; the first
    exception raised (in order of the coroutines) is raised once all have ended."""
    results: list[Any] = []
    waiting: dict[int, asyncio.Future[Any]] = {}
    for i, coro in enumerate(coros):
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            results.append(stop.value)
            continue
        except BaseException as exc:  # noqa: BLE001 - handed back below, as gather would
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            waiting[i] = failed
        else:
            waiting[i] = asyncio.ensure_future(_finish(coro, awaited))
        results.append(None)
    if waiting:
        ended = await asyncio.gather(*waiting.values(), return_exceptions=True)
        for i, value in zip(waiting, ended):
            if isinstance(value, BaseException):
                raise value
            results[i] = value
    return results


async def shield_eager(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.shield(coro)`, first run in the caller: a coroutine that ends without suspending (a
    budget settled in memory) needs no Task, and nothing can cancel it half-way."""
    try:
        awaited = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    return await asyncio.shield(_finish(coro, awaited))


async def _finish(coro: Coroutine[Any, Any, T], awaited: Any) -> T:
    return await _resume(coro, awaited)  # type: ignore[no-any-return]


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], awaited: Any) -> Any:
    """Drive a started coroutine: hand what it awaits to the running Task, pass back what the Task sends or throws."""
    while True:
        try:
            sent = yield awaited
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - a cancellation (or any throw) goes to the coroutine
            try:
                awaited = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                awaited = coro.send(sent)
            except StopIteration as stop:
                return stop.value
