"""The durable ledger's reckoning of a killed process: an admission's hold is charged what it drew
less what its answered calls left, never less than the process may have been billed (a real sqlite
ledger; the holder is killed with SIGKILL once its reports are written)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moa_lab.models import LedgerBudget

HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    import sqlalchemy as sa
    from moa_lab.models import LedgerBudget, Reservation

    url, scenario = sys.argv[1], sys.argv[2]

    async def main():
        ledger = LedgerBudget(url, "run", 10.0)
        plan = {"1:a": [Reservation(0.4, 400)], "2:b": [Reservation(0.5, 500)]}
        admission = await ledger.admit(1.0, 1000, plan)  # calls planned at $0.40 and $0.50, $0.10 spare
        drawn, released = 0.0, 0.0
        if scenario in ("answered", "redrawn"):  # call a came back having cost $0.10 of its $0.40
            first = await admission.reserve(9.0, 9000, "1:a")
            await admission.settle(first, 0.1, 100)
            drawn, released = 0.4, 0.3
        if scenario != "admitted":  # call b is in flight when the process dies
            await admission.reserve(9.0, 9000, "2:b")
            drawn += 0.5
        if scenario == "redrawn":  # an unplanned call in flight too, drawing what a left
            await admission.reserve(0.35, 350, "3:unplanned")
            drawn += 0.35
        engine = sa.create_engine(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the reports to be written, then to be killed
            with engine.begin() as db:
                row = db.execute(sa.text("SELECT drawn_usd, released_usd FROM moa_ledger_reservation")).one()
            if abs(row.drawn_usd - drawn) < 1e-9 and abs(row.released_usd - released) < 1e-9:
                break
            await asyncio.sleep(0.01)
        print("holding", flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)

# what the dead process may have been billed: answered calls' real cost, calls in flight at worst
CHARGED = {
    "admitted": 0.0,  # admitted, nothing drawn: nothing sent
    "in-flight": 0.5,  # b in flight
    "answered": 0.6,  # a cost 0.10, b in flight at 0.50 (the spare 0.10 never drawn)
    "redrawn": 0.95,  # a cost 0.10, b 0.50 and the unplanned 0.35 in flight
}


@pytest.mark.parametrize("scenario", list(CHARGED))
def test_a_dead_admission_is_charged_what_it_drew_less_what_came_back(tmp_path: Path, scenario: str) -> None:
    url = f"sqlite:///{tmp_path / 'budget.sqlite'}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, scenario], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "holding", proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    ledger = LedgerBudget(url, "run", 10.0)  # a resumed run: the dead process's hold is reckoned here
    try:
        assert ledger.reserved_usd == pytest.approx(0, abs=1e-12)
        assert ledger.spent_usd == pytest.approx(CHARGED[scenario])
        assert ledger.spent_tokens == round(CHARGED[scenario] * 1000)
    finally:
        ledger.close()


def test_a_dead_plain_reservation_is_charged_its_worst_case(tmp_path: Path) -> None:
    """A hold that reports nothing (a call's top-up beyond its admission) counts whole."""
    url = f"sqlite:///{tmp_path / 'budget.sqlite'}"
    script = ("import asyncio, sys; from moa_lab.models import LedgerBudget\n"
              "async def main():\n"
              "    ledger = LedgerBudget(sys.argv[1], 'run', 10.0)\n"
              "    await ledger.reserve(0.7, 700)\n"
              "    print('holding', flush=True)\n"
              "    await asyncio.sleep(600)\n"
              "asyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    ledger = LedgerBudget(url, "run", 10.0)
    try:
        assert (ledger.spent_usd, ledger.reserved_usd) == (pytest.approx(0.7), pytest.approx(0, abs=1e-12))
    finally:
        ledger.close()
