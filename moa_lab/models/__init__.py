"""Models: one `Model` wrapper (cache, budget, concurrency, retry, cost) over narrow providers."""

from moa_lab.core import process_alive
from moa_lab.models._budget import Admission, Budget, Reservation
from moa_lab.models._cache import CallCache, MemoryCache, RedisCache, SharedCache, SqliteCache, call_key
from moa_lab.models._client import BoundedClient, ModelClient
from moa_lab.models._ledger import LedgerBudget
from moa_lab.models._endpoints import EndpointConfig, default_endpoints
from moa_lab.models._model import CacheOnly, Model, RetryPolicy, cache_only, gather_calls
from moa_lab.models._modelset import ModelSet
from moa_lab.models._pricing import Price, PriceTable, estimate_prompt_tokens, estimate_tokens, estimate_tokens_of_length, estimate_usage
from moa_lab.models._recording import RecordedCall, recording_file, replay_key, write_recording

__all__ = [
    "Admission",
    "BoundedClient",
    "Budget",
    "CacheOnly",
    "CallCache",
    "EndpointConfig",
    "LedgerBudget",
    "MemoryCache",
    "Model",
    "ModelClient",
    "ModelSet",
    "Price",
    "RedisCache",
    "PriceTable",
    "RecordedCall",
    "Reservation",
    "RetryPolicy",
    "SharedCache",
    "SqliteCache",
    "cache_only",
    "call_key",
    "default_endpoints",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "estimate_tokens_of_length",
    "estimate_usage",
    "gather_calls",
    "process_alive",
    "recording_file",
    "replay_key",
    "write_recording",
]
