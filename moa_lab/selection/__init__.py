"""Selection: which proposers each query calls. The learned and diverse selectors, the artifacts
they load and their numeric kernels (numpy, embeddings) load on first use, so `import moa_lab` stays
light; `moa_lab.routing` trains with the same kernels."""

from typing import Any

from moa_lab.selection._selector import AllProposers, FirstK, PoolSelector, RandomK, Selector, build_selector, selector

_LAZY = {
    "AGGREGATORS": "moa_lab.selection._artifact",
    "CascadePlan": "moa_lab.selection._cascade",
    "DiverseSelector": "moa_lab.selection._diverse",
    "Reference": "moa_lab.selection._diverse",
    "LearnedSelector": "moa_lab.selection._learned",
    "Library": "moa_lab.selection._rules",
    "OperatingPoint": "moa_lab.selection._operating",
    "Router": "moa_lab.selection._artifact",
    "SubsetRule": "moa_lab.selection._rules",
    "VoteModel": "moa_lab.selection._rules",
    "answer_similarity": "moa_lab.selection._kernels",
    "deviation_gram": "moa_lab.selection._kernels",
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
    "DiverseSelector",
    "FirstK",
    "LearnedSelector",
    "Library",
    "OperatingPoint",
    "PoolSelector",
    "RandomK",
    "Reference",
    "Router",
    "Selector",
    "SubsetRule",
    "VoteModel",
    "answer_similarity",
    "build_selector",
    "deviation_gram",
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
