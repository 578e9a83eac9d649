"""The budget across kills: SIGKILL an evaluation under a cap, resume it, and count what the
server was asked for (a real local server, the real CLI, the run's sqlite ledger)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import lite_experiment, start_eval

from moa_lab.models import LedgerBudget
from moa_lab.testing import OpenAITestServer
from moa_lab.tracking import QueryRecord, read_runlog

pytestmark = pytest.mark.slow
N = 24
PRICES = {"p1": (10.0, 30.0), "p2": (10.0, 30.0), "p3": (10.0, 30.0), "agg": (20.0, 60.0)}


def _reply(body: dict[str, Any]) -> str:
    return "Paris is the answer" if body["model"] != "p2" else "Lyon"


def _served_usd(calls: list[Any]) -> float:
    """What the server's answers cost, counted the server's way (words; see OpenAITestServer)."""
    total = 0.0
    for call in calls:
        words_in = sum(len(str(m["content"]).split()) + 4 for m in call.body["messages"])
        words_out = min(len(_reply(call.body).split()), call.body.get("max_tokens") or 10**9)
        price_in, price_out = PRICES[call.model]
        total += (words_in * price_in + words_out * price_out) / 1e6
    return total


def _experiment(folder: Path, base_url: str, cap: float | None) -> Path:
    prices = ", ".join(f"{m}: {{input: {i}, output: {o}}}" for m, (i, o) in PRICES.items())
    budget = f"budget: {{usd: {cap}}}\n" if cap is not None else ""
    return lite_experiment(folder, base_url, "budget-kill", samples=N, concurrency=4, extra=f"prices: {{{prices}}}\n{budget}")


def _records(exp: Path) -> list[QueryRecord]:
    path = exp.parent / "out" / "budget-kill" / "latest" / "lite.jsonl"
    try:
        return read_runlog(path).records if path.exists() else []
    except Exception:  # noqa: BLE001 - the file may be mid-write
        return []


def test_a_killed_run_resumed_keeps_the_cap_counted_by_the_server(tmp_path: Path) -> None:
    with OpenAITestServer(latency=0.2, responder=_reply) as srv:
        (tmp_path / "ref").mkdir()
        ref = start_eval(_experiment(tmp_path / "ref", srv.base_url, None))
        assert ref.wait(120) == 0, ref.stderr.read()  # type: ignore[union-attr]
        full = _served_usd(srv.calls)
        cap = round(full / 2, 6)  # the cap binds: half of what the whole run costs
        (tmp_path / "unkilled").mkdir()  # how many finish under this cap when nothing is killed
        unkilled = _experiment(tmp_path / "unkilled", srv.base_url, cap)
        assert start_eval(unkilled).wait(120) == 3
        finished_unkilled = sum(r.error is None for r in _records(unkilled))
        srv.reset()

        (tmp_path / "run").mkdir()
        exp = _experiment(tmp_path / "run", srv.base_url, cap)
        first = start_eval(exp)
        deadline = time.time() + 60
        while time.time() < deadline and len([r for r in _records(exp) if r.error is None]) < 2:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # queries and calls in flight: their reservations stay in the ledger
        first.wait(30)
        in_flight_at_kill = sum(1 for c in srv.calls if c.finished != c.finished)  # nan: not answered
        second = start_eval(exp, "--resume")
        out, err = second.communicate(timeout=180)
        assert second.returncode == 3, err[-2000:]  # samples the budget could not start count as failed
        served = _served_usd(srv.calls)

    records = _records(exp)
    ids = Counter(r.id for r in records)
    assert set(ids) == {f"q{i}" for i in range(N)} and max(ids.values()) == 1  # none missing, none twice
    assert served <= cap, (served, cap, in_flight_at_kill)
    unfinished = [r for r in records if r.error is not None]
    assert unfinished and all(r.error.startswith("BudgetExceeded: query not started") for r in unfinished)  # type: ignore[union-attr]
    assert sum(r.cost.paid_usd for r in unfinished) == 0
    ledger = LedgerBudget(f"sqlite:///{exp.parent / 'out' / 'budget-kill' / 'latest' / 'budget.sqlite'}", "run", cap)
    try:
        assert ledger.reserved_usd == pytest.approx(0, abs=1e-12)  # the killed worker's holds were counted as spent
        assert served <= ledger.spent_usd <= cap * (1 + 1e-9)
    finally:
        ledger.close()
    print(f"cap ${cap:.6f}; server counted ${served:.6f}; ledger spent ${ledger.spent_usd:.6f}; "
          f"{len(records) - len(unfinished)} finished, {len(unfinished)} not started "
          f"({finished_unkilled} finish under this cap without a kill; {in_flight_at_kill} requests in flight at the kill)")
