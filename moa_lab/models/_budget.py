"""The hard budget guard: reserve the worst case before a call, settle the real cost after."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from moa_lab.core import BudgetExceeded


@dataclass(frozen=True)
class Reservation:
    usd: float
    tokens: int


class Budget:
    """A cap in US dollars and/or tokens. `spent + reserved` never exceeds the cap, so under any
    concurrency the settled spend stays within it as long as endpoints honour max_tokens.

    A call whose worst case does not fit beside the calls in flight waits for them to settle (their
    real cost is usually far below their worst case); it is refused only when it would not fit even
    if nothing else were in flight.
    """

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
        return (self.max_usd is None or self.spent_usd + extra_usd + usd <= self.max_usd) and (
            self.max_tokens is None or self.spent_tokens + extra_tokens + tokens <= self.max_tokens
        )

    async def reserve(self, usd: float, tokens: int) -> Reservation:
        """Hold the worst case of one call, waiting for calls in flight to settle if need be;
        raise BudgetExceeded if it cannot fit even then."""
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
        """Replace a reservation by what the call really cost (0 for a call that failed)."""
        assert self._settled is not None, "settle() without reserve()"
        async with self._settled:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            self.spent_usd += usd
            self.spent_tokens += tokens
            self._settled.notify_all()

    def _refusal(self, usd: float, tokens: int) -> str:
        if self.max_usd is not None and self.spent_usd + usd > self.max_usd:
            return f"budget ${self.max_usd:.4f}: spent ${self.spent_usd:.4f}, this call may cost up to ${usd:.4f}"
        return f"budget {self.max_tokens} tokens: spent {self.spent_tokens}, this call may use up to {tokens}"

    @property
    def remaining_usd(self) -> float | None:
        return None if self.max_usd is None else self.max_usd - self.spent_usd - self._reserved_usd

    def __repr__(self) -> str:
        return f"Budget(usd={self.max_usd}, tokens={self.max_tokens}, spent_usd={self.spent_usd:.6f})"
