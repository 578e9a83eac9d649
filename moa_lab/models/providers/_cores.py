"""How many of this machine's cores are idle now: the embedded server takes one compute thread per
idle core when it starts (see `moa_lab.models.providers._embedded.default_threads`)."""

from __future__ import annotations

import os
import time


def idle_cores(sample_s: float = 0.3) -> int:
    """How many of the cores this process may use are idle now (at least 1), from two readings of
    /proc/stat `sample_s` apart; every usable core where /proc/stat is unreadable.

    llama.cpp's threads meet at a barrier for every matrix product, so one thread that shares its core
    with another busy process stalls the rest: with one of 2 cores busy, 2 threads served 15-18x
    slower than 1 (docs/reliability.md), while on an idle machine 2 were 1.7x faster."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        first = _cpu_times()
        time.sleep(sample_s)
        second = _cpu_times()
    except (OSError, ValueError, IndexError):
        return usable
    elapsed = [b - a for a, b in zip(first, second)]
    total = sum(elapsed)
    if total <= 0:
        return usable
    idle_fraction = (elapsed[3] + elapsed[4]) / total  # idle and iowait; steal counts as busy
    return max(1, min(usable, round(idle_fraction * (os.cpu_count() or usable))))


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()
    if fields[0] != "cpu":
        raise ValueError("unexpected /proc/stat")
    return [int(value) for value in fields[1:9]]
