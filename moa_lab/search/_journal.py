"""The study's journal file, written the way a replayed study can afford.

Optuna's file backend takes a symlink lock (a create and an unlink) and fsyncs for every write, and
a trial writes about thirty times (each parameter and attribute): on this project's disks that was
a replayed study's largest fixed cost. Here workers take an `flock` on a lock file beside the
journal (released by the kernel when a worker dies, so a killed worker never leaves a stale lock)
and each append is one `write` without fsync: what was written survives the process being killed
(it is in the OS's page cache); only a machine crash can lose the last appends, and the trials they
described are then run again from the call cache, not paid again.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from optuna.storages.journal import JournalFileBackend


class _Flock:
    """An exclusive `flock` on `path`, opened once per process."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class JournalFile(JournalFileBackend):
    """A journal file shared by the workers of one machine (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._flock = _Flock(f"{path}.flock")
        super().__init__(path, lock_obj=self._flock)  # type: ignore[arg-type]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._flock.acquire()
        try:
            with open(self._file_path, "ab") as fh:
                fh.write(data)
        finally:
            self._flock.release()
