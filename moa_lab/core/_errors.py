"""Typed errors. Every failure a user can cause or meet has a class and a message that says the fix."""

from __future__ import annotations


class MoaLabError(Exception):
    """Base of every error moa-lab raises on purpose."""


class ConfigError(MoaLabError, ValueError):
    """Bad configuration: unknown name, invalid field, missing variable. The message says where."""


class EndpointError(MoaLabError):
    """A model endpoint failed. `retryable` errors (429, 5xx, timeouts) are retried by the Model."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1
        """How many attempts were made before giving up (set by the Model that retried)."""


class BudgetExceeded(MoaLabError):
    """A call was refused because its worst-case cost does not fit in what is left of the budget."""


class ReplayMissing(MoaLabError):
    """A replayed model was asked a prompt it has no recording for."""


class StoreDamaged(MoaLabError):
    """A store every sample shares (the call cache) cannot be read or written. Unlike a sample's own
    failure it stops the run, since every later sample would fail the same way."""
