"""Whether a process that left its mark in a shared store (a ledger hold, a trial, a call claim) still runs."""

from __future__ import annotations

import os
import socket


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host. A zombie (killed, not yet reaped by its
    parent, as a `search --workers` worker is until the parent waits for it) is not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): os.kill's answer stands
        return True


def process_gone(host: str, pid: int) -> bool:
    """Whether process `pid` on `host` is known to have ended: it ran on this host and runs no more.
    One on another host may be alive; a lease or heartbeat has to tell."""
    return host == socket.gethostname() and not process_alive(pid)


def this_process() -> tuple[str, int]:
    """(host name, process id): how a shared store names the process holding something."""
    return socket.gethostname(), os.getpid()
