"""The Tracker protocol: what evaluation and search log to (MLflow is the shipped implementation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from moa_lab.tracking._records import QueryRecord


@runtime_checkable
class Tracker(Protocol):
    """A sink for runs: nested runs with params and tags, batched metrics, one row (and optionally
    one trace) per query, artifacts. The RunLog stays the data model; a tracker only mirrors it."""

    def start_run(
        self, name: str, *, params: Mapping[str, Any], tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None, continue_run_id: str | None = None,
    ) -> str:
        """Open a run (nested under `parent_run_id`); `continue_run_id` reopens a resumed run's own."""
        ...

    def mark_killed(self, run_ids: Iterable[str]) -> None:
        """Mark runs that a killed process left RUNNING as killed."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None: ...

    def log_query(self, record: QueryRecord, *, trace: bool = True) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def end_run(self, *, status: str = "FINISHED") -> None: ...
