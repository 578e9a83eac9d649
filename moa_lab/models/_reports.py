"""What this process's admissions drew and released, written to their ledger rows by one thread, so
a killed process's holds can be charged what it may really have been billed (see `LedgerBudget`).

A draw is written before the money drawn can be sent (`draw` waits for it); a release (the unused
part of a call that came back) is written soon after, without waiting: a release lost with the
process only leaves more counted. Reports made while a write is under way share the next one.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any


class Reports:
    """The latest drawn and released totals of each reservation, written by a background thread."""

    def __init__(self, engine: Any, worker: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = engine
        self._worker = worker
        self._lock = threading.Lock()
        self._drawn: dict[str, tuple[float, int]] = {}
        self._released: dict[str, tuple[float, int]] = {}
        self._waiting: list[Future[None]] = []
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="moa-ledger-reports", daemon=True)
        self._thread.start()

    async def draw(self, rid: str, usd: float, tokens: int) -> None:
        """Record that `usd`/`tokens` of reservation `rid` have been drawn in all; returns once written."""
        done: Future[None] = Future()
        with self._lock:
            self._drawn[rid] = (usd, tokens)
            self._waiting.append(done)
        self._wake.set()
        await asyncio.wrap_future(done)

    def release(self, rid: str, usd: float, tokens: int) -> None:
        """Record that `usd`/`tokens` of what reservation `rid` drew came back unspent, in all."""
        with self._lock:
            self._released[rid] = (usd, tokens)
        self._wake.set()

    def forget(self, rid: str) -> None:
        """The reservation is settled: nothing more to write for it (a late write finds no row)."""
        with self._lock:
            self._released.pop(rid, None)

    def _run(self) -> None:
        text = self._sa.text
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                if self._stop:
                    _settle(self._waiting, RuntimeError("the ledger was closed"))
                    return
                drawn, released, waiting = self._drawn, self._released, self._waiting
                self._drawn, self._released, self._waiting = {}, {}, []
            try:
                with self._engine.begin() as db:  # a settled reservation's row is gone: its update is a no-op
                    for rid, (usd, tokens) in drawn.items():
                        db.execute(text("UPDATE moa_ledger_reservation SET drawn_usd = :u, drawn_tokens = :t "
                                        "WHERE id = :i AND worker = :w"), {"u": usd, "t": tokens, "i": rid, "w": self._worker})
                    for rid, (usd, tokens) in released.items():
                        db.execute(text("UPDATE moa_ledger_reservation SET released_usd = :u, released_tokens = :t "
                                        "WHERE id = :i AND worker = :w"), {"u": usd, "t": tokens, "i": rid, "w": self._worker})
            except Exception as exc:  # noqa: BLE001 - the draws fail (their calls are not sent); releases wait for the next write
                _settle(waiting, exc)
                with self._lock:
                    self._released = released | self._released
                continue
            _settle(waiting, None)

    def close(self) -> None:
        """Stop the writer (draws still waiting fail)."""
        with self._lock:
            self._stop = True
        self._wake.set()
        self._thread.join()


def _settle(waiting: list[Future[None]], error: BaseException | None) -> None:
    for done in waiting:
        if done.cancelled():  # its caller was cancelled while waiting
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
