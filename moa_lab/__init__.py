"""moa-lab: a research framework for Mixture-of-Agents LLM systems.

    import moa_lab as moa
    spec = moa.preset("self-moa", k=5)
    results = moa.run(spec, [moa.Sample("What is the capital of France?")])
"""

from moa_lab.agents import AgentContext, aggregator, proposer
from moa_lab.core import (
    Answer,
    BudgetExceeded,
    CallRecord,
    ConfigError,
    Cost,
    Exchange,
    Message,
    MoaLabError,
    Proposal,
    Sample,
    Sampling,
    Usage,
)
from moa_lab.models import Budget, EndpointConfig, ModelSet, PriceTable, SqliteCache
from moa_lab.pipeline import Pipeline, run, run_async
from moa_lab.selection import selector
from moa_lab.topology import AgentSpec, LayerSpec, TopologySpec, load_topology, preset
from moa_lab.tracking import QueryRecord

__version__ = "0.1.0"

__all__ = [
    "AgentContext",
    "AgentSpec",
    "Answer",
    "Budget",
    "BudgetExceeded",
    "CallRecord",
    "ConfigError",
    "Cost",
    "EndpointConfig",
    "Exchange",
    "LayerSpec",
    "Message",
    "ModelSet",
    "MoaLabError",
    "Pipeline",
    "PriceTable",
    "Proposal",
    "QueryRecord",
    "Sample",
    "Sampling",
    "SqliteCache",
    "TopologySpec",
    "Usage",
    "aggregator",
    "load_topology",
    "preset",
    "proposer",
    "run",
    "run_async",
    "selector",
]
