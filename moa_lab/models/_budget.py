"""The hard budget guard: reserve the worst case before a call, settle the real cost after."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from moa_lab.core import BudgetExceeded


@dataclass(frozen=True)
class Reservation:
    usd: float
    tokens: int


class Budget:
    """A cap in US dollars and/or tokens. `spent + reserved` never exceeds the cap, so under any
    concurrency the settled spend stays within it as long as endpoints honour max_tokens."""

    def __init__(self, usd: float | None = None, tokens: int | None = None) -> None:
        self.max_usd = usd
        self.max_tokens = tokens
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self.refused = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._lock = threading.Lock()

    def reserve(self, usd: float, tokens: int) -> Reservation:
        """Hold the worst case of one call, or raise BudgetExceeded if it does not fit."""
        with self._lock:
            if self.max_usd is not None and self.spent_usd + self._reserved_usd + usd > self.max_usd:
                self.refused += 1
                raise BudgetExceeded(
                    f"budget ${self.max_usd:.4f}: spent ${self.spent_usd:.4f}, held ${self._reserved_usd:.4f}, "
                    f"this call may cost up to ${usd:.4f}"
                )
            if self.max_tokens is not None and self.spent_tokens + self._reserved_tokens + tokens > self.max_tokens:
                self.refused += 1
                raise BudgetExceeded(
                    f"budget {self.max_tokens} tokens: spent {self.spent_tokens}, held {self._reserved_tokens}, "
                    f"this call may use up to {tokens}"
                )
            self._reserved_usd += usd
            self._reserved_tokens += tokens
            return Reservation(usd, tokens)

    def settle(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Replace a reservation by what the call really cost (0 for a call that failed)."""
        with self._lock:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            self.spent_usd += usd
            self.spent_tokens += tokens

    @property
    def remaining_usd(self) -> float | None:
        return None if self.max_usd is None else self.max_usd - self.spent_usd - self._reserved_usd

    def __repr__(self) -> str:
        return f"Budget(usd={self.max_usd}, tokens={self.max_tokens}, spent_usd={self.spent_usd:.6f})"
