"""The hard budget guard: a query (or a search trial's stage) is admitted on its whole worst case,
its calls draw from that admission, and what they do not use is released."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from moa_lab.core import BudgetExceeded


@dataclass(frozen=True)
class Reservation:
    """An amount held against a budget; `id` names its row in a durable ledger."""

    usd: float
    tokens: int
    id: str | None = None
    topup: Reservation | None = None
    """The part of a call's worst case its admission could not cover, held on the admission's parent."""


class Budget:
    """A cap in US dollars and/or tokens, kept in this process. `spent + reserved` never exceeds the
    cap, so under any concurrency the settled spend stays within it as long as endpoints honour
    max_tokens.

    A reservation that does not fit beside the ones in flight waits for them to settle (their real
    cost is usually far below their worst case); it is refused only when it would not fit even if
    nothing else were in flight. `admit` takes a whole query's worst case at once (see `Admission`).
    For a cap that survives a kill and is shared by processes, use `LedgerBudget`.
    """

    durable = False

    def __init__(self, usd: float | None = None, tokens: int | None = None) -> None:
        self.max_usd = usd
        self.max_tokens = tokens
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self.refused = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._settled: asyncio.Condition | None = None

    def _fits(self, usd: float, tokens: int, *, held: bool) -> bool:
        extra_usd = self._reserved_usd if held else 0.0
        extra_tokens = self._reserved_tokens if held else 0
        # a float sum of settled parts may exceed the cap by rounding alone
        return (self.max_usd is None or self.spent_usd + extra_usd + usd <= self.max_usd * (1 + 1e-12)) and (
            self.max_tokens is None or self.spent_tokens + extra_tokens + tokens <= self.max_tokens
        )

    async def reserve(self, usd: float, tokens: int, key: str | None = None) -> Reservation:
        """Hold a worst case, waiting for reservations in flight to settle if need be; raise
        BudgetExceeded if it cannot fit even then."""
        if self._settled is None:
            self._settled = asyncio.Condition()
        async with self._settled:
            while True:
                if not self._fits(usd, tokens, held=False):
                    self.refused += 1
                    raise BudgetExceeded(self._refusal(usd, tokens))
                if self._fits(usd, tokens, held=True):
                    self._reserved_usd += usd
                    self._reserved_tokens += tokens
                    return Reservation(usd, tokens)
                await self._settled.wait()

    async def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Replace (part of) a reservation by what it really cost (0 for a call that failed)."""
        assert self._settled is not None, "settle() without reserve()"
        async with self._settled:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            self.spent_usd += usd
            self.spent_tokens += tokens
            self._settled.notify_all()

    async def admit(self, usd: float, tokens: int, plan: dict[str, list[Reservation]] | None = None) -> Admission:
        """Reserve a query's whole worst case; its calls then draw from the returned Admission."""
        return Admission(self, await self.reserve(usd, tokens), plan)

    def _refusal(self, usd: float, tokens: int) -> str:
        if self.max_usd is not None and self.spent_usd + usd > self.max_usd:
            return f"budget ${self.max_usd:.4f}: spent ${self.spent_usd:.4f}, this may cost up to ${usd:.4f}"
        return f"budget {self.max_tokens} tokens: spent {self.spent_tokens}, this may use up to {tokens}"

    @property
    def reserved_usd(self) -> float:
        return self._reserved_usd

    @property
    def remaining_usd(self) -> float | None:
        return None if self.max_usd is None else self.max_usd - self.spent_usd - self._reserved_usd

    def close(self) -> None:
        """Nothing to release for a budget kept in memory."""

    def __repr__(self) -> str:
        return f"Budget(usd={self.max_usd}, tokens={self.max_tokens}, spent_usd={self.spent_usd:.6f})"


@dataclass
class Admission:
    """What a query (or a search trial's stage) was admitted with: its worst case, held on `parent`.

    Calls reserve from it and are never refused while their planned worst case is left; `plan` maps
    a call's key (`"<layer>:<agent>"`) to the worst cases it was admitted with, which bound that call
    (a later layer's prompt is bounded by the previous layer's max_tokens outputs, tighter than the
    bytes of the text it will really hold). A call nobody planned draws what is free and reserves any
    shortfall on `parent`, where it may wait or be refused. With an in-memory parent every settled
    call releases its unused worst case at once. With a durable ledger the spend is written once,
    at `close`; meanwhile the ledger is told what was drawn (`draw`, written before the money can
    be sent) and what settled calls left (`release`, written soon after), so a process killed
    before `close` is charged its answered calls' real cost and the worst case of its calls in
    flight, never less than it may have been billed, and nothing for what it never drew.
    Admissions nest: a query is admitted from a trial stage's Admission, and only from what is free.
    """

    parent: Budget | Admission | object
    reservation: Reservation
    plan: dict[str, list[Reservation]] | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    refused: int = 0

    durable = False

    def __post_init__(self) -> None:
        self._free_usd = self._open_usd = self.reservation.usd
        self._free_tokens = self._open_tokens = self.reservation.tokens
        self._own_usd, self._own_tokens = 0.0, 0
        self._drawn_usd, self._drawn_tokens = 0.0, 0
        self._released_usd, self._released_tokens = 0.0, 0
        self._eager = not getattr(self.parent, "durable", False)
        self._closed = False

    @property
    def max_usd(self) -> float:
        return self.reservation.usd

    def _take(self, usd: float, tokens: int) -> tuple[float, int]:
        take_usd, take_tokens = min(usd, max(self._free_usd, 0.0)), min(tokens, max(self._free_tokens, 0))
        self._free_usd -= take_usd
        self._free_tokens -= take_tokens
        return take_usd, take_tokens

    async def reserve(self, usd: float, tokens: int, key: str | None = None) -> Reservation:
        """Draw a call's worst case: its planned bound when `key` was planned, else `usd`/`tokens`."""
        planned = self.plan.get(key) if self.plan is not None and key is not None else None
        if planned:
            bound = planned.pop(0)
            if bound.usd > 0 or bound.tokens > 0:  # planned as a cache hit: draw what it really needs
                usd, tokens = min(usd, bound.usd), min(tokens, bound.tokens)
        take_usd, take_tokens = self._take(usd, tokens)
        topup = None
        try:
            if usd - take_usd > 1e-15 or tokens - take_tokens > 0:
                topup = await self.parent.reserve(usd - take_usd, max(tokens - take_tokens, 0))  # type: ignore[attr-defined]
            await self._draw(take_usd, take_tokens)
        except BaseException as exc:
            self._free_usd += take_usd
            self._free_tokens += take_tokens
            if topup is not None:
                await asyncio.shield(self.parent.settle(topup, 0.0, 0))  # type: ignore[attr-defined]
            if isinstance(exc, BudgetExceeded):
                self.refused += 1
            raise
        return Reservation(take_usd, take_tokens, topup=topup)

    async def _draw(self, usd: float, tokens: int) -> None:
        """Before what is drawn here can be sent: a durable parent is told (and has written) the total."""
        if self._eager or (usd <= 0 and tokens <= 0):
            return
        self._drawn_usd += usd
        self._drawn_tokens += tokens
        await self.parent.draw(self.reservation, self._drawn_usd, self._drawn_tokens)  # type: ignore[attr-defined]

    async def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Record what a drawn call cost; release its unused part (at once, unless the parent is durable)."""
        self.spent_usd += usd
        self.spent_tokens += tokens
        if reservation.topup is not None:  # a topped-up call's spend goes with its own reservation
            await self.parent.settle(reservation.topup, usd, tokens)  # type: ignore[attr-defined]
            usd, tokens = 0.0, 0
        if self._eager:
            self._open_usd -= reservation.usd
            self._open_tokens -= reservation.tokens
            await self.parent.settle(Reservation(reservation.usd, reservation.tokens), usd, tokens)  # type: ignore[attr-defined]
        else:
            self._own_usd += usd
            self._own_tokens += tokens
            self._free_usd += reservation.usd - usd
            self._free_tokens += reservation.tokens - tokens
            self._released_usd += reservation.usd - usd
            self._released_tokens += reservation.tokens - tokens
            self.parent.release(self.reservation, self._released_usd, self._released_tokens)  # type: ignore[attr-defined]

    async def admit(self, usd: float, tokens: int, plan: dict[str, list[Reservation]] | None = None) -> Admission:
        """A nested admission (a query inside a trial stage), from what is free here only."""
        if usd > self._free_usd * (1 + 1e-12) or tokens > self._free_tokens:
            self.refused += 1
            raise BudgetExceeded(f"admitted ${self.reservation.usd:.4f}: ${max(self._free_usd, 0):.4f} left, "
                                 f"this may cost up to ${usd:.4f}")
        taken = Reservation(*self._take(usd, tokens))
        try:
            await self._draw(taken.usd, taken.tokens)  # all of it: the nested admission's calls draw in memory
        except BaseException:
            self._free_usd += taken.usd
            self._free_tokens += taken.tokens
            raise
        return Admission(self, taken, plan)

    async def close(self) -> None:
        """Release what is left (with a durable parent: settle the whole reservation, once)."""
        if self._closed:
            return
        self._closed = True
        if self._eager:
            await self.parent.settle(Reservation(self._open_usd, self._open_tokens), 0.0, 0)  # type: ignore[attr-defined]
        else:
            await self.parent.settle(self.reservation, self._own_usd, self._own_tokens)  # type: ignore[attr-defined]
