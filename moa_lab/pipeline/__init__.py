"""The async engine that runs topologies over queries, with a trace per query."""

from moa_lab.pipeline._engine import Pipeline, run, run_async
from moa_lab.pipeline._trace import QueryResult

__all__ = ["Pipeline", "QueryResult", "run", "run_async"]
