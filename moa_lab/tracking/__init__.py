"""Tracking: the RunLog data model (typed records) and its writers (MLflow is a sink on top)."""

from moa_lab.tracking._lock import WriterLock, WriterLocked, lock_folder
from moa_lab.tracking._mlflow import MlflowTracker, default_artifact_location, default_tracking_uri, redact_uri
from moa_lab.tracking._records import SCHEMA, VERSION, QueryRecord, RunHeader, total_cost
from moa_lab.tracking._runlog import RunLog, RunLogWriter, read_runlog, read_runlogs
from moa_lab.tracking._tracker import Tracker

__all__ = [
    "SCHEMA",
    "VERSION",
    "MlflowTracker",
    "QueryRecord",
    "RunHeader",
    "RunLog",
    "RunLogWriter",
    "Tracker",
    "WriterLock",
    "WriterLocked",
    "default_artifact_location",
    "default_tracking_uri",
    "lock_folder",
    "read_runlog",
    "read_runlogs",
    "redact_uri",
    "total_cost",
]
