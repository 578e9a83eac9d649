"""Selection: which proposers each query calls."""

from moa_lab.selection._selector import AllProposers, FirstK, RandomK, Selector, build_selector, selector

__all__ = ["AllProposers", "FirstK", "RandomK", "Selector", "build_selector", "selector"]
