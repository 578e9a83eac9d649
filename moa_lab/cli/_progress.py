"""Progress of a run: live bars on a terminal, periodic plain lines in a log or a file."""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """One line of progress per RunLog. On a terminal: rich bars. Otherwise (a pipe, a file, CI) a
    plain line per RunLog when it starts, every `every_s` seconds while it runs
    (`$MOA_LAB_PROGRESS_EVERY`, default 10) and when it ends, so a log shows a long run moving."""

    def __init__(self, console: Console, *, every_s: float | None = None) -> None:
        self._console = console
        self._every = every_s if every_s is not None else float(os.environ.get("MOA_LAB_PROGRESS_EVERY", "10"))
        self._bars: Progress | None = None
        if console.is_terminal:
            self._bars = Progress(TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console)
        self._tasks: dict[str, Any] = {}
        self._state: dict[str, list[float]] = {}  # name -> [done, total, started, last line]

    def __enter__(self) -> RunProgress:
        if self._bars is not None:
            self._bars.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.__exit__(kind, exc, tb)

    def start(self, name: str, total: int) -> None:
        """A RunLog of `total` samples begins."""
        now = time.monotonic()
        self._state[name] = [0, total, now, now]
        if self._bars is not None:
            self._tasks[name] = self._bars.add_task(name, total=total, stats="")
        else:
            self._line(f"{name}: started, {total} samples")

    def advance(self, name: str, stats: str) -> None:
        """One more sample of `name` is done; `stats` is its running summary."""
        state = self._state[name]
        state[0] += 1
        if self._bars is not None:
            self._bars.update(self._tasks[name], advance=1, stats=stats)
            return
        now = time.monotonic()
        if state[0] >= state[1] or now - state[3] >= self._every:
            state[3] = now
            self._line(f"{name}: {int(state[0])}/{int(state[1])} · {stats} · {now - state[2]:.0f}s")

    def _line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)
        self._console.file.flush()
