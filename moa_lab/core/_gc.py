"""Fewer cyclic garbage collections while a run or a study builds its records."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

RUN_THRESHOLD = 100_000
"""Net container allocations between young-generation collections inside `collecting_less`
(Python's default is 700)."""


@contextlib.contextmanager
def collecting_less(threshold: int = RUN_THRESHOLD) -> Iterator[None]:
    """Collect cycles every `threshold` net allocations instead of every 700 while inside.

    A run allocates millions of short-lived records, messages and tuples, almost none in cycles
    (reference counting frees them), while the long-lived ones it holds (a study's cached answers,
    its data) are scanned again at every older-generation collection: with the default thresholds
    the cyclic GC took about a quarter of a replayed 60-trial study's time, with this one under 1%.
    Cycles are still collected, later. The thresholds in force before are restored on exit."""
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
