"""Benchmarks: loaders that turn datasets into Samples."""

from moa_lab.benchmarks._loaders import from_queries, load_alpaca_eval, load_jsonl

__all__ = ["from_queries", "load_alpaca_eval", "load_jsonl"]
