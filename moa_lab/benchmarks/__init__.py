"""Benchmarks: loaders that turn datasets into Samples, and built-in task sets for the embedded model."""

from moa_lab.benchmarks._datasets import PREFIX as DATA_PREFIX
from moa_lab.benchmarks._datasets import DataFile, DataMissing, Dataset, Pulled, data_roots, datasets, find_data, pull, pull_dir
from moa_lab.benchmarks._gsm8k import load_gsm8k, load_recorded_responses, recorded_models
from moa_lab.benchmarks._loaders import from_queries, load_alpaca_eval, load_jsonl, load_mt_bench, second_turn
from moa_lab.benchmarks._tasks import TASKS, Task, builtin_task

__all__ = [
    "DATA_PREFIX",
    "DataFile",
    "DataMissing",
    "Dataset",
    "Pulled",
    "data_roots",
    "datasets",
    "find_data",
    "pull",
    "pull_dir",
    "TASKS",
    "Task",
    "builtin_task",
    "from_queries",
    "load_alpaca_eval",
    "load_gsm8k",
    "load_jsonl",
    "load_mt_bench",
    "load_recorded_responses",
    "recorded_models",
    "second_turn",
]
