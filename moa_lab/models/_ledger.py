"""A durable budget: every reservation is a database row, written before its calls are sent and
settled after, so the cap holds across kills, resumes and worker processes (sqlite or PostgreSQL).

Each process is a worker with a lease it renews every HEARTBEAT_S seconds. The reservations of a
worker whose lease has lapsed (or, on this host, whose process is gone) are removed and counted as
spent, so nobody waits on a dead worker and the cap still holds: whatever it sent before it died was
within what it had reserved. An admission's reservation (a query's, a trial stage's) is counted at
what it had drawn less what came back unspent, as its process reported them (`draw`, written before
the money drawn can be sent; `release`, written soon after a call settles): a killed query is
charged its answered calls' real cost and the worst case of its calls in flight (the server may
have billed them), nothing for calls it never sent. Any other reservation counts at its worst case.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from typing import Any

from moa_lab.core import BudgetExceeded, StoreDamaged, process_gone, redact_uri
from moa_lab.models._budget import Admission, Reservation
from moa_lab.models._reports import Reports

HEARTBEAT_S = 2.0
LEASE_S = 10.0
"""A worker that has not renewed its lease for this long is gone."""

_REPORTED = (("drawn_usd", "FLOAT"), ("drawn_tokens", "BIGINT"),
             ("released_usd", "FLOAT NOT NULL DEFAULT 0"), ("released_tokens", "BIGINT NOT NULL DEFAULT 0"))
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS moa_ledger (name VARCHAR(255) PRIMARY KEY, cap_usd FLOAT, cap_tokens BIGINT, "
    "spent_usd FLOAT NOT NULL DEFAULT 0, spent_tokens BIGINT NOT NULL DEFAULT 0, "
    "reserved_usd FLOAT NOT NULL DEFAULT 0, reserved_tokens BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS moa_ledger_reservation (id VARCHAR(64) PRIMARY KEY, name VARCHAR(255) NOT NULL, "
    "worker VARCHAR(255) NOT NULL, usd FLOAT NOT NULL, tokens BIGINT NOT NULL, drawn_usd FLOAT, drawn_tokens BIGINT, "
    "released_usd FLOAT NOT NULL DEFAULT 0, released_tokens BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS moa_ledger_worker (worker VARCHAR(255) PRIMARY KEY, host VARCHAR(255) NOT NULL, "
    "pid INTEGER NOT NULL, beat FLOAT NOT NULL)",
)


class LedgerBudget:
    """A hard cap in US dollars and/or tokens kept in the database at a SQLAlchemy `url`, under `name`.

    Reserving is one transaction (a conditional UPDATE of the ledger row, `spent + reserved + x <=
    cap`, atomic in sqlite and PostgreSQL alike, and the reservation's row); settling is one more.
    A query (or a search trial's stage) reserves its whole worst case once and its calls draw from
    the `Admission` in memory: two transactions per query, and one short update of what it drew
    before its calls are sent (calls drawing at once share it).
    """

    durable = True

    def __init__(self, url: str, name: str, usd: float | None = None, tokens: int | None = None) -> None:
        import sqlalchemy as sa

        self.max_usd = usd
        self.max_tokens = tokens
        self.refused = 0
        self.name = name
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sa = sa
        sqlite = url.startswith("sqlite")
        self._engine = sa.create_engine(url, connect_args={"timeout": 60} if sqlite else {})
        if sqlite:
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            self._open(usd, tokens)
        except sa.exc.DatabaseError as exc:  # a damaged file: one line naming it, not a driver's traceback
            where = url.removeprefix("sqlite:///") if sqlite else redact_uri(url)
            raise StoreDamaged(f"{where}: the budget ledger cannot be used ({exc.orig}); it records what was spent under "
                               "the cap, so do not delete it: restore it from a copy, or start afresh in a new output folder") from None
        self._stop = threading.Event()
        self._reports = Reports(self._engine, self.worker)
        self._beat = threading.Thread(target=self._heartbeat, name="moa-ledger-lease", daemon=True)
        self._beat.start()

    def _open(self, usd: float | None, tokens: int | None) -> None:
        """Create the tables if need be, set the cap, register this worker and reclaim dead ones' holds."""
        sa, name = self._sa, self.name
        with self._engine.begin() as db:
            for statement in _SCHEMA:
                db.execute(sa.text(statement))
            columns = {c["name"] for c in sa.inspect(db).get_columns("moa_ledger_reservation")}
            for column, kind in _REPORTED:
                if column not in columns:  # a ledger written before admissions reported what they drew
                    db.execute(sa.text(f"ALTER TABLE moa_ledger_reservation ADD COLUMN {column} {kind}"))
            found = db.execute(sa.text("SELECT 1 FROM moa_ledger WHERE name = :n"), {"n": name}).first()
            if found is None:
                db.execute(sa.text("INSERT INTO moa_ledger (name, cap_usd, cap_tokens) VALUES (:n, :u, :t)"),
                           {"n": name, "u": usd, "t": tokens})
            else:  # the cap is the one given now (a resumed run may raise or lower it)
                db.execute(sa.text("UPDATE moa_ledger SET cap_usd = :u, cap_tokens = :t WHERE name = :n"),
                           {"n": name, "u": usd, "t": tokens})
            db.execute(sa.text("INSERT INTO moa_ledger_worker (worker, host, pid, beat) VALUES (:w, :h, :p, :b)"),
                       {"w": self.worker, "h": socket.gethostname(), "p": os.getpid(), "b": time.time()})
        self.reclaim()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with self._engine.begin() as db:
                    db.execute(self._sa.text("UPDATE moa_ledger_worker SET beat = :b WHERE worker = :w"),
                               {"b": time.time(), "w": self.worker})
            except Exception:  # noqa: BLE001, S112 - a missed beat is retried; a long outage expires the lease
                continue

    async def draw(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """An admission's reservation has handed out `usd`/`tokens` in all; returns once that is
        written, before the money can be sent."""
        await self._reports.draw(str(reservation.id), usd, tokens)

    def release(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Of what an admission's reservation handed out, `usd`/`tokens` in all came back unspent
        (written soon after, without waiting)."""
        self._reports.release(str(reservation.id), usd, tokens)

    def reclaim(self) -> float:
        """Count the reservations of dead workers as spent: an admission's at what it had drawn less
        what came back (never above its worst case), any other at its worst case; returns the $
        charged to this ledger."""
        sa = self._sa
        with self._engine.begin() as db:
            workers = db.execute(sa.text("SELECT worker, host, pid, beat FROM moa_ledger_worker")).all()
            now = time.time()
            dead = [w.worker for w in workers if w.worker != self.worker and
                    (w.beat < now - LEASE_S or process_gone(w.host, w.pid))]
            moved = 0.0
            for worker in dead:
                # DELETE ... RETURNING: two workers reclaiming at once never count a row twice
                rows = db.execute(sa.text("DELETE FROM moa_ledger_reservation WHERE worker = :w "
                                          "RETURNING name, usd, tokens, drawn_usd, drawn_tokens, released_usd, released_tokens"),
                                  {"w": worker}).all()
                for row in rows:
                    charged_usd, charged_tokens = row.usd, row.tokens
                    if row.drawn_usd is not None:  # an admission that reported what it drew
                        charged_usd = min(row.usd, max(row.drawn_usd - row.released_usd, 0.0))
                        charged_tokens = min(row.tokens, max(row.drawn_tokens - row.released_tokens, 0))
                    db.execute(sa.text(
                        "UPDATE moa_ledger SET reserved_usd = reserved_usd - :u, reserved_tokens = reserved_tokens - :t, "
                        "spent_usd = spent_usd + :cu, spent_tokens = spent_tokens + :ct WHERE name = :n"),
                        {"u": row.usd, "t": row.tokens, "cu": charged_usd, "ct": charged_tokens, "n": row.name})
                    moved += charged_usd if row.name == self.name else 0.0
                db.execute(sa.text("DELETE FROM moa_ledger_worker WHERE worker = :w"), {"w": worker})
        return moved

    def _row(self) -> Any:
        with self._engine.begin() as db:
            return db.execute(self._sa.text("SELECT * FROM moa_ledger WHERE name = :n"), {"n": self.name}).one()

    @property
    def spent_usd(self) -> float:
        return float(self._row().spent_usd)

    @property
    def spent_tokens(self) -> int:
        return int(self._row().spent_tokens)

    @property
    def reserved_usd(self) -> float:
        return float(self._row().reserved_usd)

    @property
    def remaining_usd(self) -> float | None:
        row = self._row()
        return None if row.cap_usd is None else row.cap_usd - row.spent_usd - row.reserved_usd

    def _try_reserve(self, usd: float, tokens: int, drawn: float | None = None) -> str | None:
        sa = self._sa
        with self._engine.begin() as db:
            done = db.execute(sa.text(
                "UPDATE moa_ledger SET reserved_usd = reserved_usd + :u, reserved_tokens = reserved_tokens + :t "
                "WHERE name = :n AND (cap_usd IS NULL OR spent_usd + reserved_usd + :u <= cap_usd * (1 + 1e-12)) "
                "AND (cap_tokens IS NULL OR spent_tokens + reserved_tokens + :t <= cap_tokens)"),
                {"u": usd, "t": tokens, "n": self.name})
            if not done.rowcount:
                return None
            rid = uuid.uuid4().hex
            # drawn NULL: a plain reservation, counted at its worst case if its worker dies
            db.execute(sa.text("INSERT INTO moa_ledger_reservation (id, name, worker, usd, tokens, drawn_usd, drawn_tokens) "
                               "VALUES (:i, :n, :w, :u, :t, :du, :dt)"),
                       {"i": rid, "n": self.name, "w": self.worker, "u": usd, "t": tokens, "du": drawn,
                        "dt": None if drawn is None else 0})
            return rid

    async def reserve(self, usd: float, tokens: int, key: str | None = None, *, drawn: float | None = None) -> Reservation:
        """Hold a worst case; wait while others hold the rest (reclaiming dead workers' holds);
        raise BudgetExceeded when it could not fit even with nothing held. `drawn=0` marks an
        admission's hold, which reports what it draws (see `draw`)."""
        checked = 0.0
        while True:
            rid = await asyncio.to_thread(self._try_reserve, usd, tokens, drawn)
            if rid is not None:
                return Reservation(usd, tokens, rid)
            if time.monotonic() - checked > HEARTBEAT_S:
                checked = time.monotonic()
                await asyncio.to_thread(self.reclaim)
            row = await asyncio.to_thread(self._row)
            if (row.cap_usd is not None and row.spent_usd + usd > row.cap_usd * (1 + 1e-12)) or (
                row.cap_tokens is not None and row.spent_tokens + tokens > row.cap_tokens
            ):
                self.refused += 1
                raise BudgetExceeded(f"budget ${row.cap_usd:.4f}: spent ${row.spent_usd:.4f}, this may cost up to ${usd:.4f}"
                                     if row.cap_usd is not None else
                                     f"budget {row.cap_tokens} tokens: spent {row.spent_tokens}, this may use up to {tokens}")
            await asyncio.sleep(0.05)

    async def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Replace a reservation by what it cost. A reservation already counted as spent (its worker
        was taken for dead) stays counted at its worst case."""
        self._reports.forget(str(reservation.id))

        def write() -> None:
            sa = self._sa
            with self._engine.begin() as db:
                gone = db.execute(sa.text("DELETE FROM moa_ledger_reservation WHERE id = :i"), {"i": reservation.id})
                if gone.rowcount:
                    db.execute(sa.text(
                        "UPDATE moa_ledger SET reserved_usd = reserved_usd - :r, reserved_tokens = reserved_tokens - :rt, "
                        "spent_usd = spent_usd + :u, spent_tokens = spent_tokens + :t WHERE name = :n"),
                        {"r": reservation.usd, "rt": reservation.tokens, "u": usd, "t": tokens, "n": self.name})

        await asyncio.to_thread(write)

    async def admit(self, usd: float, tokens: int, plan: dict[str, list[Reservation]] | None = None) -> Admission:
        """Reserve a query's (or a trial stage's) whole worst case; its calls draw from the Admission."""
        return Admission(self, await self.reserve(usd, tokens, drawn=0.0), plan)

    def close(self) -> None:
        """End this worker's lease (its reservations, if any are left, then count as spent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._beat.join()
        self._reports.close()
        with self._engine.begin() as db:
            held = db.execute(self._sa.text("SELECT COUNT(*) FROM moa_ledger_reservation WHERE worker = :w"),
                              {"w": self.worker}).scalar()
            if not held:
                db.execute(self._sa.text("DELETE FROM moa_ledger_worker WHERE worker = :w"), {"w": self.worker})
            else:
                db.execute(self._sa.text("UPDATE moa_ledger_worker SET beat = 0 WHERE worker = :w"), {"w": self.worker})
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"LedgerBudget({self.name!r}, usd={self.max_usd}, tokens={self.max_tokens})"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
