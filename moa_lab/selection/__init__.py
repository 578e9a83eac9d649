"""Selection: which proposers each query calls."""

from moa_lab.selection._router import LearnedSelector, Router, proposer_key, vote_quality
from moa_lab.selection._vote import vote_routed, vote_static
from moa_lab.selection._selector import AllProposers, FirstK, RandomK, Selector, build_selector, selector

__all__ = [
    "AllProposers",
    "FirstK",
    "LearnedSelector",
    "RandomK",
    "Router",
    "Selector",
    "build_selector",
    "proposer_key",
    "selector",
    "vote_quality",
    "vote_routed",
    "vote_static",
]
