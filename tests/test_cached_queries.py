"""A query whose calls are all in the call cache is answered from it whole: nothing is sent, planned
or admitted (so it runs under any budget); a query with one uncached call is admitted as before. And
`gather_eager`, which runs such cached calls without a Task each, behaves as `asyncio.gather`."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from pathlib import Path

import pytest

from moa_lab.core import Sample, collecting_less, gather_eager, shield_eager
from moa_lab.models import Budget, EndpointConfig, ModelSet, Price, PriceTable, SqliteCache, cache_only
from moa_lab.pipeline import Pipeline
from moa_lab.testing import OpenAITestServer
from moa_lab.topology import load_topology

SAMPLES = [Sample(f"question {i}", id=f"q{i}") for i in range(4)]


class CountingBudget(Budget):
    """A budget that counts the queries admitted on it."""

    admitted = 0

    async def admit(self, usd: float, tokens: int, plan: dict | None = None):  # type: ignore[no-untyped-def]
        self.admitted += 1
        return await super().admit(usd, tokens, plan)


def _vote(*models: str):
    return load_topology({"layers": [{"proposers": [{"agent": "plain", "model": m, "temperature": 0.0} for m in models]}],
                          "aggregator": {"agent": "vote"}})


def _models(server: OpenAITestServer, tmp_path: Path, budget: Budget) -> ModelSet:
    return ModelSet({"srv": EndpointConfig(kind="openai", base_url=server.base_url)}, cache=SqliteCache(tmp_path / "calls.sqlite"),
                    prices=PriceTable({m: Price(1.0, 2.0) for m in ("a", "b", "c", "d")}), budget=budget, cache_dir=tmp_path)


def test_cached_queries_need_no_admission_and_a_cache_only_run_sends_nothing(tmp_path: Path) -> None:
    with OpenAITestServer(responder=lambda body: "yes") as server:
        async def run(spec, budget: Budget) -> list:
            async with _models(server, tmp_path, budget) as models:
                return await Pipeline(spec, models).run(SAMPLES)

        first = asyncio.run(run(_vote("srv/a", "srv/b", "srv/c"), Budget(usd=1.0)))
        assert [r.error for r in first] == [None] * 4 and len(server.calls) == 12
        # a cap no call's worst case fits under: only queries needing no admission can run
        tiny = CountingBudget(usd=1e-12)
        again = asyncio.run(run(_vote("srv/a", "srv/b", "srv/c"), tiny))
        assert [r.answer.text for r in again] == ["yes"] * 4 and all(c.cached for r in again for c in r.calls)
        assert len(server.calls) == 12 and tiny.spent_usd == 0 and tiny.admitted == 0
        # one proposer more, not cached: the query needs its worst case admitted, and is refused unsent
        wider = asyncio.run(run(_vote("srv/a", "srv/b", "srv/c", "srv/d"), tiny))
        assert all(r.error is not None and "query not started" in r.error for r in wider)
        assert len(server.calls) == 12 and tiny.admitted == 4 and tiny.refused == 4


def test_cache_only_reports_a_miss_without_sending(tmp_path: Path) -> None:
    looked: list[str] = []
    with OpenAITestServer(responder=lambda body: "yes") as server:
        async def main() -> tuple[bool, str | None, object]:
            async with _models(server, tmp_path, Budget()) as models:
                with cache_only() as only:
                    record = await Pipeline(_vote("srv/a"), models).run_query(SAMPLES[0])
                get = models.cache.get  # type: ignore[union-attr]
                models.cache.get = lambda key: looked.append(key) or get(key)  # type: ignore[union-attr]
                attempt = await Pipeline(_vote("srv/a", "srv/b", "srv/c"), models)._from_cache(SAMPLES[0])
                return only.missed, record.error, attempt

        missed, error, attempt = asyncio.run(main())
    assert missed and error is not None and server.calls == []
    # a query with a miss is not answered from the cache, and once its first call missed the
    # attempt is thrown away: the other proposers' calls are not looked up
    assert attempt is None and len(looked) == 1


async def _now(x: int) -> int:
    return x


async def _later(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 10


async def _raises() -> int:
    raise ValueError("bad sample")


def test_gather_eager_keeps_order_and_mixes_finished_and_waiting_coroutines() -> None:
    assert asyncio.run(gather_eager([_now(1), _later(2), _now(3), _later(4)])) == [1, 20, 3, 40]
    assert asyncio.run(gather_eager([])) == []


def test_gather_eager_raises_the_first_error_after_every_coroutine_ended() -> None:
    ended: list[int] = []

    async def slow_then_note() -> int:
        await asyncio.sleep(0.01)
        ended.append(1)
        return 1

    with pytest.raises(ValueError, match="bad sample"):
        asyncio.run(gather_eager([_now(0), _raises(), slow_then_note()]))
    assert ended == [1]


def test_cancelling_gather_eager_cancels_the_waiting_coroutines() -> None:
    seen: list[str] = []

    async def waits() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "never"

    async def main() -> None:
        task = asyncio.ensure_future(gather_eager([waits(), _now(1)]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_shield_eager_runs_a_coroutine_that_never_waits_in_the_caller_and_shields_one_that_does() -> None:
    ended: list[str] = []

    async def settles_later() -> str:
        await asyncio.sleep(0.01)
        ended.append("settled")
        return "late"

    async def main() -> tuple[str, asyncio.Task[str]]:
        now = await shield_eager(_now(5))
        outer = asyncio.ensure_future(shield_eager(settles_later()))
        await asyncio.sleep(0)
        outer.cancel()  # the caller is cancelled: what it awaited still ends
        await asyncio.sleep(0.05)
        return str(now), outer

    now, outer = asyncio.run(main())
    assert now == "5" and outer.cancelled() and ended == ["settled"]


def test_collecting_less_raises_the_young_threshold_inside_and_restores_it_after() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError):
        with collecting_less(50_000):
            assert gc.get_threshold() == (max(50_000, before[0]), *before[1:])
            raise ValueError("a failed run")
    assert gc.get_threshold() == before


def _add_trials(journal: str, n: int) -> None:
    import optuna

    from moa_lab.search._journal import JournalFile

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="s", storage=optuna.storages.journal.JournalStorage(JournalFile(journal)))
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 1))


def test_the_journal_is_shared_by_worker_processes_and_read_by_optuna_itself(tmp_path: Path) -> None:
    import optuna

    from moa_lab.search._journal import JournalFile

    journal = str(tmp_path / "journal.log")
    optuna.create_study(study_name="s", storage=optuna.storages.journal.JournalStorage(JournalFile(journal)))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_add_trials, args=(journal, 15)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    stock = optuna.load_study(study_name="s", storage=optuna.storages.journal.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)))
    trials = stock.get_trials()
    assert len(trials) == 45 and sorted(t.number for t in trials) == list(range(45))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
