"""A writer's lock on a RunLog or a run folder: one writer at a time, a second one refused.

It is an advisory `fcntl.flock` on a lock file beside the locked path (the RunLog itself is replaced
on open, so its inode cannot carry the lock). The kernel drops the lock when its process dies, so a
killed run never leaves a stale lock; the file only records who held it last.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from moa_lab.core import MoaLabError


class WriterLocked(MoaLabError):
    """Another process is writing this RunLog or run folder."""


class WriterLock:
    """An exclusive, non-blocking lock on `path` (through `lock_path`), held until `release`."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise WriterLocked(f"{path} is being written by {holder}: wait for it to finish or stop it; "
                               "two writers would pay for the same calls twice") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh: IO[str] | None = fh

    def release(self) -> None:
        """Release the lock (safe to call twice)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def lock_runlog(path: Path) -> WriterLock:
    """Lock the RunLog `path` for writing (through `.<name>.lock` beside it)."""
    return WriterLock(path, path.with_name(f".{path.name}.lock"))


def lock_folder(folder: Path) -> WriterLock:
    """Lock a run folder for one process (through `folder/.lock`)."""
    return WriterLock(folder, folder / ".lock")
