"""Tracking: the RunLog data model and its writers (MLflow is a sink on top)."""

from moa_lab.tracking._mlflow import MlflowTracker, default_artifact_location, default_tracking_uri
from moa_lab.tracking._runlog import SCHEMA, VERSION, RunLogWriter, read_runlog

__all__ = [
    "SCHEMA",
    "VERSION",
    "MlflowTracker",
    "RunLogWriter",
    "default_artifact_location",
    "default_tracking_uri",
    "read_runlog",
]
