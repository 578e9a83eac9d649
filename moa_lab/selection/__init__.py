"""Selection: which proposers each query calls. The learned selector, the router artifact it loads
and the router's numeric kernels (numpy, embeddings) load on first use, so `import moa_lab` stays
light; `moa_lab.routing` trains with the same kernels."""

from typing import Any

from moa_lab.selection._selector import AllProposers, FirstK, PoolSelector, RandomK, Selector, build_selector, selector

_LAZY = {
    "AGGREGATORS": "moa_lab.selection._artifact",
    "CascadePlan": "moa_lab.selection._cascade",
    "LearnedSelector": "moa_lab.selection._learned",
    "Library": "moa_lab.selection._rules",
    "OperatingPoint": "moa_lab.selection._operating",
    "Router": "moa_lab.selection._artifact",
    "SubsetRule": "moa_lab.selection._rules",
    "VoteModel": "moa_lab.selection._rules",
    "knn_success": "moa_lab.selection._kernels",
    "mlp_logits": "moa_lab.selection._kernels",
    "nearest": "moa_lab.selection._kernels",
    "proposer_key": "moa_lab.selection._artifact",
    "sigmoid": "moa_lab.selection._kernels",
    "vote_quality": "moa_lab.selection._kernels",
    "vote_margin": "moa_lab.selection._cascade",
    "vote_routed": "moa_lab.selection._vote",
    "vote_static": "moa_lab.selection._vote",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moa_lab.selection' has no attribute {name!r}")


__all__ = [
    "AGGREGATORS",
    "AllProposers",
    "CascadePlan",
    "FirstK",
    "LearnedSelector",
    "Library",
    "OperatingPoint",
    "PoolSelector",
    "RandomK",
    "Router",
    "Selector",
    "SubsetRule",
    "VoteModel",
    "build_selector",
    "knn_success",
    "mlp_logits",
    "nearest",
    "proposer_key",
    "selector",
    "sigmoid",
    "vote_margin",
    "vote_quality",
    "vote_routed",
    "vote_static",
]
