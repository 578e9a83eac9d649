"""Value types shared by every layer of moa-lab, and the few run-wide helpers they all use (eager gathering, GC thresholds, the cache folder)."""

from moa_lab.core._errors import (
    BudgetExceeded,
    ConfigError,
    EndpointError,
    MoaLabError,
    ReplayMissing,
    StoreDamaged,
)
from moa_lab.core._cache_dir import default_cache_dir
from moa_lab.core._eager import gather_eager, shield_eager
from moa_lab.core._gc import collecting_less
from moa_lab.core._processes import process_alive, process_gone, this_process
from moa_lab.core._redact import REDACTED, redact_uri
from moa_lab.core._messages import Completion, Message, Request, Sampling, Usage
from moa_lab.core._results import Answer, CallRecord, Cost, Exchange, Proposal, Sample, Score, Stage

__all__ = [
    "REDACTED",
    "Answer",
    "BudgetExceeded",
    "CallRecord",
    "Completion",
    "ConfigError",
    "Cost",
    "EndpointError",
    "Exchange",
    "Message",
    "MoaLabError",
    "Proposal",
    "ReplayMissing",
    "Request",
    "Sample",
    "Sampling",
    "Score",
    "Stage",
    "StoreDamaged",
    "Usage",
    "collecting_less",
    "default_cache_dir",
    "gather_eager",
    "shield_eager",
    "process_alive",
    "process_gone",
    "this_process",
    "redact_uri",
]
