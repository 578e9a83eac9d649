"""Selection: which proposers each query calls. The learned selector's module (numpy, embeddings)
loads on first use, so `import moa_lab` stays light."""

from typing import Any

from moa_lab.selection._selector import AllProposers, FirstK, PoolSelector, RandomK, Selector, build_selector, selector

_LAZY = {
    "LearnedSelector": "moa_lab.selection._router",
    "Router": "moa_lab.selection._router",
    "proposer_key": "moa_lab.selection._router",
    "vote_quality": "moa_lab.selection._router",
    "vote_routed": "moa_lab.selection._vote",
    "vote_static": "moa_lab.selection._vote",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moa_lab.selection' has no attribute {name!r}")


__all__ = [
    "AllProposers",
    "FirstK",
    "LearnedSelector",
    "PoolSelector",
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
