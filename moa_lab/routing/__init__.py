"""Routing: learn which proposers each query should call, from recorded outcomes.

    moa-lab router train ../shared/data/gsm8k --aggregator vote --out runs/router
    moa-lab router eval runs/router ../shared/data/gsm8k

Training data comes from recorded datasets (`from_recorded`) or evaluation RunLogs (`from_runlogs`);
`train` writes an artifact folder that `selector: {kind: learned, path: ...}` loads in any topology.
A vote router falls back to the best static subset at each λ where cross-validation finds routing
no better, and carries learned cascades (`CascadePlan`) that stop when cheap proposers agree.
`build_reference` (`moa-lab router diverse`) writes the label-free reference set that
`selector: {kind: diverse, path: ..., k: ...}` loads.

    moa-lab router eval runs/subpools ../shared/data/gsm8k --subpools 20 --size 9
"""

from moa_lab.routing._data import RoutingData, from_recorded, from_runlogs, load_routing_data
from moa_lab.routing._diversity import fit_reference
from moa_lab.routing._evaluate import LAMBDAS, Point, RouterEval, evaluate_router
from moa_lab.routing._subpools import Subpool, SubpoolReport, evaluate_subpools
from moa_lab.routing._reference import Comparison, build_reference, compare_selectors, ratio_interval
from moa_lab.routing._train import KINDS, TrainConfig, train_router
from moa_lab.selection import vote_routed, vote_static
from moa_lab.routing._workflow import as_embedder_spec, embed_data, evaluate, plot_curves, train

__all__ = [
    "Comparison",
    "KINDS",
    "LAMBDAS",
    "Point",
    "RouterEval",
    "RoutingData",
    "Subpool",
    "SubpoolReport",
    "TrainConfig",
    "as_embedder_spec",
    "build_reference",
    "compare_selectors",
    "embed_data",
    "evaluate",
    "evaluate_router",
    "evaluate_subpools",
    "fit_reference",
    "from_recorded",
    "from_runlogs",
    "load_routing_data",
    "plot_curves",
    "ratio_interval",
    "train",
    "train_router",
    "vote_routed",
    "vote_static",
]
