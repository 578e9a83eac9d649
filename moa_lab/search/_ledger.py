"""A study-wide budget shared by every worker process: the `Budget` protocol over one database row.

Reserving is one conditional UPDATE (`spent + reserved + x <= cap`), atomic in sqlite and
PostgreSQL alike, so workers on one machine or many never overshoot the cap together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from moa_lab.core import BudgetExceeded
from moa_lab.models import Reservation


class LedgerBudget:
    """The hard $ cap of a study, kept in a table of the given SQLAlchemy URL (sqlite or PostgreSQL)."""

    def __init__(self, url: str, study: str, usd: float) -> None:
        import sqlalchemy as sa

        self.max_usd = usd
        self.max_tokens = None
        self.refused = 0
        self._sa = sa
        self._study = study
        sqlite = url.startswith("sqlite")
        self._engine = sa.create_engine(url, connect_args={"timeout": 60} if sqlite else {})
        if sqlite:  # WAL: workers read while one writes; NORMAL: no fsync per tiny update
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        with self._engine.begin() as db:
            db.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS moa_budget (study VARCHAR(255) PRIMARY KEY, cap FLOAT NOT NULL, "
                "spent FLOAT NOT NULL DEFAULT 0, reserved FLOAT NOT NULL DEFAULT 0)"))
            exists = db.execute(sa.text("SELECT 1 FROM moa_budget WHERE study = :s"), {"s": study}).first()
            if exists is None:
                db.execute(sa.text("INSERT INTO moa_budget (study, cap) VALUES (:s, :c)"), {"s": study, "c": usd})

    def _row(self) -> Any:
        with self._engine.begin() as db:
            return db.execute(self._sa.text("SELECT cap, spent, reserved FROM moa_budget WHERE study = :s"), {"s": self._study}).one()

    @property
    def spent_usd(self) -> float:
        return float(self._row().spent)

    def _try_reserve(self, usd: float) -> bool:
        with self._engine.begin() as db:
            done = db.execute(self._sa.text(
                "UPDATE moa_budget SET reserved = reserved + :x WHERE study = :s AND spent + reserved + :x <= cap"),
                {"x": usd, "s": self._study})
            return bool(done.rowcount)

    async def reserve(self, usd: float, tokens: int) -> Reservation:
        """Hold the worst case; wait while other calls are in flight; refuse when it can never fit."""
        while True:
            if await asyncio.to_thread(self._try_reserve, usd):
                return Reservation(usd, tokens)
            row = await asyncio.to_thread(self._row)
            if row.spent + usd > row.cap:
                self.refused += 1
                raise BudgetExceeded(f"study budget ${row.cap:.4f}: spent ${row.spent:.4f}, this call may cost up to ${usd:.4f}")
            await asyncio.sleep(0.05)

    async def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        def write() -> None:
            with self._engine.begin() as db:
                db.execute(self._sa.text("UPDATE moa_budget SET reserved = reserved - :r, spent = spent + :x WHERE study = :s"),
                           {"r": reservation.usd, "x": usd, "s": self._study})

        await asyncio.to_thread(write)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
