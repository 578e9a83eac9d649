"""The async engine that runs topologies over queries, one typed record per query."""

from moa_lab.pipeline._engine import Pipeline, run, run_async
from moa_lab.pipeline._plan import Prepared, QueryPlan, plan_query

__all__ = ["Pipeline", "Prepared", "QueryPlan", "plan_query", "run", "run_async"]
