"""MLflow's process-wide trace settings, set for the life of one tracker run and restored after.

MLflow's trace exporter reads the process-wide tracking URI (not a client's) and its async logging
settings from the environment when the tracer is set up. A tracker applies them when its outermost
run starts and restores what was there when that run ends, so library code leaves no global state
changed behind it.
"""

from __future__ import annotations

import os

# sqlite has one writer at a time: MLflow's 10 export threads only wait on its lock (start_trace
# went from 16 to 90 ms each), and larger span batches share a commit. A user's own setting wins.
SQLITE_TRACE_ENV = {
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS": "1",
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE": "100",
}


class TraceScope:
    """Applies the trace destination (and, for sqlite, the export settings) and restores them."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._saved: tuple[object, dict[str, str | None]] | None = None

    def enter(self) -> None:
        if self._saved is not None:
            return
        import mlflow
        from mlflow.tracking._tracking_service import utils  # the URI set by set_tracking_uri, if any

        names = ["MLFLOW_TRACKING_URI", *SQLITE_TRACE_ENV]
        self._saved = (utils._tracking_uri, {n: os.environ.get(n) for n in names})  # noqa: SLF001
        if self.tracking_uri.startswith("sqlite:"):
            for name, value in SQLITE_TRACE_ENV.items():
                os.environ.setdefault(name, value)
        mlflow.set_tracking_uri(self.tracking_uri)

    def exit(self) -> None:
        if self._saved is None:
            return
        import mlflow

        uri, env = self._saved
        self._saved = None
        mlflow.set_tracking_uri(uri)  # type: ignore[arg-type]
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
