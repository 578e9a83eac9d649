"""The async engine that runs topologies over queries, one typed record per query."""

from moa_lab.pipeline._engine import Pipeline, run, run_async

__all__ = ["Pipeline", "run", "run_async"]
