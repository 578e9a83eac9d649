"""An MLflow sink for moa-lab runs: params, metrics, a per-query table, one trace per query.

The RunLog is the data model; this sink is fed its typed records. `mlflow` is imported inside methods
only, because importing it costs over a second and `import moa_lab.tracking` must stay light.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moa_lab.core._redact import redact, redact_uri  # noqa: F401 - redact_uri: re-exported for existing importers
from moa_lab.tracking._mlflow_scope import TraceScope
from moa_lab.tracking._records import QueryRecord
from moa_lab.tracking._trace import log_trace

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
TABLE_FILE = "queries.json"
TRACES_PER_FLUSH = 256  # below MLflow's export queue size (1000 tasks), which drops traces when full


@contextlib.contextmanager
def _first_use(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a sqlite store while this process first opens it. MLflow
    creates and migrates the schema on first use, and search workers that start together would
    otherwise all do so at once ("table alembic_version already exists")."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    with open(tracking_uri.removeprefix("sqlite:///") + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        yield


def default_tracking_uri(project_root: Path) -> str:
    """The local default store: a sqlite database under `<project_root>/mlruns`."""
    return f"sqlite:///{project_root}/mlruns/mlflow.db"


def default_artifact_location(project_root: Path) -> str:
    """Where runs in the local default store keep their artifacts (a file URI)."""
    return (project_root / "mlruns" / "artifacts").as_uri()


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as one level of dotted keys: {"a": [{"b": 1}]} -> {"a.0.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple) and value:
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            out[name] = value
    return out


class MlflowTracker:
    """Logs one moa-lab run at a time to MLflow; search trials are nested runs (`parent_run_id`)."""

    run_id: str | None

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        experiment: str = "moa-lab",
        project_root: Path | None = None,
        traces: bool = True,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri or default_tracking_uri((project_root or Path.cwd()).resolve())
        self.traces = traces
        self.run_id = None
        self._rows: list[dict[str, Any]] = []
        self._stack: list[tuple[str, list[dict[str, Any]]]] = []
        self._unflushed = 0
        artifact_location = None
        if self.tracking_uri.startswith("sqlite:///"):
            db = Path(self.tracking_uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            # Without this MLflow puts a sqlite store's artifacts in ./mlruns of whatever the cwd
            # is; next to the database keeps them together (and is the default layout).
            artifact_location = (db.parent.resolve() / "artifacts").as_uri()
        with _first_use(self.tracking_uri):
            self._client: MlflowClient = MlflowClient(self.tracking_uri)
            self._scope = TraceScope(self.tracking_uri)
            self.experiment_id = self._experiment(experiment, artifact_location)

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        if (exp := self._client.get_experiment_by_name(name)) is not None:
            return str(exp.experiment_id)
        try:
            return str(self._client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException:
            # Another search worker created it between our lookup and create.
            if (exp := self._client.get_experiment_by_name(name)) is None:
                raise
            return str(exp.experiment_id)

    def start_run(
        self,
        name: str,
        *,
        params: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        continue_run_id: str | None = None,
    ) -> str:
        """Create a run with flattened, redacted params; returns its id (also in `run_id`).
        With `continue_run_id` (a resumed moa-lab run), that run is reopened instead when it exists."""
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        if self.run_id is not None:  # a nested run: the open one resumes when this one ends
            self._stack.append((self.run_id, self._rows))
        elif self.traces:
            self._scope.enter()
        if continue_run_id is not None:
            try:
                self._client.update_run(continue_run_id, status="RUNNING")
            except MlflowException:
                pass  # gone (a deleted run): start a new one
            else:
                self.run_id, self._rows = continue_run_id, []
                return continue_run_id
        run_tags = {str(k): str(v)[:MAX_TAG_VALUE] for k, v in redact(dict(tags or {})).items()}
        if parent_run_id is not None:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = self._client.create_run(self.experiment_id, run_name=name, tags=run_tags)
        self.run_id = run.info.run_id
        self._rows = []
        items = [Param(k, str(v)[:MAX_PARAM_VALUE]) for k, v in flatten(redact(params)).items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_BATCH])
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Log metrics in one batch (more than 1000 metrics would need several)."""
        from mlflow.entities import Metric

        run_id = self._active()
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=items[i : i + METRICS_PER_BATCH])

    def log_query(self, record: QueryRecord, *, trace: bool = True) -> None:
        """Buffer the query's table row and, with `traces` (and `trace`), record its trace (`log_trace`)."""
        run_id = self._active()
        row: dict[str, Any] = {"id": record.id, "input": record.sample.input,
                               "answer": record.answer.text if record.answer else None,
                               "target": record.sample.target, "score": record.score}
        for layer in record.layers:
            for p in layer:
                row[p.agent] = p.text if p.error is None else f"[error] {p.error}"
        row |= {"cost_usd": record.cost.paid_usd, "list_cost_usd": record.cost.list_usd,
                "latency_s": record.latency_s, "error": record.error}
        self._rows.append(redact(row))
        if self.traces and trace:
            log_trace(self._client, self.experiment_id, run_id, record)
            self._unflushed += 1
            if self._unflushed >= TRACES_PER_FLUSH:
                import mlflow

                mlflow.flush_trace_async_logging()
                self._unflushed = 0

    def log_artifact(self, path: Path) -> None:
        """Attach a file to the run; a JSON-lines file (the RunLog) is logged with secrets redacted."""
        run_id = self._active()
        path = Path(path)
        if path.suffix != ".jsonl":
            self._client.log_artifact(run_id, str(path))
            return
        with tempfile.TemporaryDirectory() as tmp:
            clean = Path(tmp) / path.name
            with path.open(encoding="utf-8") as src, clean.open("w", encoding="utf-8") as dst:
                for line in src:
                    try:
                        dst.write(json.dumps(redact(json.loads(line)), ensure_ascii=False) + "\n")
                    except json.JSONDecodeError:
                        continue  # a torn last line of a killed run
            self._client.log_artifact(run_id, str(clean))

    def end_run(self, *, status: str = "FINISHED") -> None:
        """Wait for pending traces, write the query table (`queries.json`), and close the run."""
        if self.run_id is None:
            return
        import mlflow

        run_id, self.run_id = self.run_id, None
        if self.traces and not self._stack:  # a flush waits for the exporter's batch timer: once, at the outermost run
            mlflow.flush_trace_async_logging()
            self._unflushed = 0
        if self._rows:
            columns = list(dict.fromkeys(k for row in self._rows for k in row))
            table = {c: [row.get(c) for row in self._rows] for c in columns}
            try:
                self._client.log_table(run_id, data=table, artifact_file=TABLE_FILE)
            except ImportError:
                # log_table needs pandas; this is the same "split" layout it writes.
                split = {"columns": columns, "data": [[row.get(c) for c in columns] for row in self._rows]}
                self._client.log_dict(run_id, split, TABLE_FILE)
        self._rows = []
        self._client.set_terminated(run_id, status=status)
        if self._stack:
            self.run_id, self._rows = self._stack.pop()
        else:
            self._scope.exit()

    def mark_killed(self, run_ids: Iterable[str]) -> None:
        """Mark runs left RUNNING by a process that is gone as KILLED."""
        from mlflow.exceptions import MlflowException

        for run_id in run_ids:
            try:
                if self._client.get_run(run_id).info.status == "RUNNING":
                    self._client.set_terminated(run_id, status="KILLED")
            except MlflowException:
                continue  # deleted since

    def _active(self) -> str:
        if self.run_id is None:
            raise RuntimeError("no MLflow run is open: call start_run() first")
        return self.run_id

