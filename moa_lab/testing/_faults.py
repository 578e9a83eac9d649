"""What the test server was asked and the failures it can inject into its answers."""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Fault:
    """A failure to inject into one answer.

    `status`: answer HTTP `status` with a JSON error body (and `Retry-After: retry_after` when set).
    `timeout`: sleep `delay` seconds, then answer normally (the client should have given up).
    `malformed`: answer 200 `application/json` whose body is the invalid JSON `{"choices": [`.
    `trickle`: answer normally, but write the body one byte every `interval` seconds (headers at
    once), so only a deadline on the whole attempt stops the client waiting.
    `retry_after_date`: with `status`, send Retry-After as an HTTP date (`retry_after` seconds ahead).
    """

    kind: Literal["status", "timeout", "malformed", "trickle"]
    status: int = 500
    retry_after: float | None = None
    delay: float = 30.0
    interval: float = 1.0
    retry_after_date: bool = False


@dataclass
class ServedCall:
    """One completion request the server received; times are `time.perf_counter()` seconds.

    `finished` is when the answer was written (taken just before its last byte, so a client that
    holds the answer sees the call finished), `nan` while it is still being handled (or if
    `stop()` or a hang-up cut it short).
    """

    path: str
    model: str
    body: dict[str, Any]
    fault: Fault | None
    started: float
    finished: float = math.nan


def retry_after_header(fault: Fault) -> str:
    """The Retry-After header of a status fault: seconds, or an HTTP date when asked."""
    if fault.retry_after_date:
        return email.utils.formatdate(time.time() + (fault.retry_after or 0.0), usegmt=True)
    return f"{fault.retry_after:g}"
