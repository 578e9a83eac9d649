"""The two router jobs end to end: train (data -> embeddings -> artifact) and evaluate (held-out
replay -> table, curve plot, JSON, MLflow run)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.core import ConfigError, default_cache_dir
from moa_lab.embedding import ROUTER_EMBEDDER, Embedder, EmbeddingCache, build_embedder, embed
from moa_lab.routing._data import RoutingData, load_routing_data
from moa_lab.routing._evaluate import RouterEval, evaluate_router
from moa_lab.routing._single import evaluate_single
from moa_lab.routing._train import TrainConfig, train_router
from moa_lab.selection import Router


@dataclass
class Embedded:
    """Routing data with one embedding row per query, and the embedder that made them."""

    data: RoutingData
    x: np.ndarray
    embedder: Embedder
    seconds: float


def embed_data(source: str | Path, embedder_spec: dict[str, Any], **data_args: Any) -> Embedded:
    """Load routing data and embed its queries through the on-disk embedding cache."""
    start = time.perf_counter()
    data = load_routing_data(source, **data_args)
    embedder = build_embedder(embedder_spec)
    cache = EmbeddingCache(default_cache_dir() / "embeddings.sqlite")
    try:
        x = embed(embedder, data.queries, cache)
    finally:
        cache.close()
    return Embedded(data, x, embedder, time.perf_counter() - start)


def as_embedder_spec(embedder: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """An embedder spec from a name (`minilm`), a spec, or None (`ROUTER_EMBEDDER`)."""
    if embedder is None or isinstance(embedder, str):
        return {"kind": embedder or ROUTER_EMBEDDER}
    return dict(embedder)


def train(source: str | Path, out: str | Path, *, embedder: str | dict[str, Any] | None = None, test_fraction: float = 0.3,
          seed: int = 0, holdout: bool = True, config: TrainConfig | None = None, **data_args: Any) -> Router:
    """Train a router on `source` and write its artifact to `out`. With `holdout` (the default) the
    seeded test split is left out, so `evaluate` can measure on queries the router never saw.
    `embedder`: a name or spec; None, `ROUTER_EMBEDDER`."""
    spec = as_embedder_spec(embedder)
    loaded = embed_data(source, spec, **data_args)
    data = loaded.data
    rows, _ = data.split(test_fraction, seed) if holdout else (np.arange(len(data.ids)), None)
    config = config or TrainConfig(seed=seed)
    if data.graded and config.aggregator != "single":
        raise ConfigError(f"{source}: graded verdicts score one answer per query, not a {config.aggregator!r} over several; "
                          "train with --aggregator single")
    provenance = {
        "split": {"holdout": holdout, "test_fraction": test_fraction, "seed": seed},
        "query_ids": [str(data.ids[i]) for i in rows],  # so a study tuning this router can leave them out
        "embedding_seconds": round(loaded.seconds, 2),
        "data_args": {k: str(v) for k, v in data_args.items() if v is not None},
        "left_out": data.left_out,
    }
    router = train_router(data.rows(rows), loaded.x[rows], loaded.embedder, spec, config, provenance=provenance)
    router.save(out)
    return router


def evaluate(artifact: str | Path, source: str | Path, *, out: str | Path | None = None, k: int | None = None,
             mlflow: bool = True, tracking_uri: str | None = None, **data_args: Any) -> tuple[RouterEval, Path]:
    """Replay the router and every baseline on the held-out split it was trained without; write
    `eval.json` and `curve.png` to `out` (default: the artifact's `eval/` folder) and, with `mlflow`,
    log them with the targets as metrics."""
    router = Router.load(artifact)
    training = router.meta["training"]
    split = training.get("split", {})
    if not split.get("holdout"):
        raise ConfigError(f"{artifact}: trained on every query (no held-out split); train with the default split to evaluate")
    loaded = embed_data(source, router.meta["embedder"]["spec"], **(training.get("data_args", {}) | data_args))
    data = loaded.data
    train_rows, test_rows = data.split(float(split["test_fraction"]), int(split["seed"]))
    if data.rows(train_rows).fingerprint() != training["hash"]:
        raise ConfigError(
            f"{artifact}: trained on other data than {source} gives under its split (training-data hash differs); "
            "held-out queries could overlap its training queries, so it is not evaluated"
        )
    from threadpoolctl import threadpool_limits

    if router.aggregator == "single":
        result = evaluate_single(router, data, loaded.x, train_rows, test_rows)
    else:
        with threadpool_limits(1):  # small matrices: BLAS threads cost more than they save
            result = evaluate_router(router, data, loaded.x, train_rows, test_rows, k=k, seed=int(split["seed"]))
    folder = Path(out) if out else Path(artifact) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    result.summary["router_training_seconds"] = training.get("seconds")
    (folder / "eval.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    plot_curves(result, folder / "curve.png", title=f"{Path(artifact).name} on {Path(source).name}: held-out {result.test_queries} queries")
    if mlflow:
        _log_mlflow(router, result, folder, artifact, source, tracking_uri)
    return result, folder


def plot_curves(result: RouterEval, path: Path, *, title: str = "") -> Path:
    """Accuracy against $ per query (log scale): curves for methods with a knob, markers for the rest."""
    from matplotlib.figure import Figure  # a figure object, not pyplot: no global backend or figure state

    styles = {"router": ("C3", "o-"), "routing-only": ("C1", "x:"), "cascade": ("C4", "D-"), "router-true-p": ("C3", ":"),
              "static-best": ("C0", "s-"), "top-k": ("C2", "^-"), "random-k": ("C7", "v--")}
    fig = Figure(figsize=(8, 5.2))
    ax = fig.subplots()
    for method in result.methods:
        pts = result.curve(method)
        usd, acc = [p.usd for p in pts], [p.accuracy for p in pts]
        area = result.area.get(method)
        label = f"{method} (area {area:.4f})" if method in styles and area == area else method
        if method in styles:
            color, fmt = styles[method]
            ax.plot(usd, acc, fmt, color=color, label=label, markersize=4, alpha=0.5 if method == "router-true-p" else 1)
        else:
            ax.plot(usd, acc, "*", markersize=12, label=f"{method}: {pts[0].label}")
    ax.set_xscale("log")
    ax.set_xlabel("$ per query (list prices, log scale)")
    ax.set_ylabel(f"{result.summary.get('quality', 'accuracy')} on the held-out split")
    ax.set_ylim(max(0.0, min(p.accuracy for p in result.points if p.method != "random-k") - 0.05), 1.005)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _log_mlflow(router: Router, result: RouterEval, folder: Path, artifact: str | Path, source: str | Path,
                tracking_uri: str | None) -> None:
    from moa_lab.tracking import MlflowTracker

    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="moa-lab-routing", traces=False)
    params = {"artifact": str(artifact), "data": str(source), "aggregator": router.aggregator,
              "embedder": router.meta["embedder"]["id"], "proposers": len(router.proposers),
              "predictors": ",".join(p["kind"] for p in router.meta["predictors"]), **router.meta["training"]["split"]}
    tracker.start_run(f"router-eval {Path(artifact).name}", params=params, tags={"moa_lab.kind": "router-eval"})
    try:
        metrics = {f"area_{m}": v for m, v in result.area.items() if v == v}
        metrics |= {k: float(v) for k, v in result.summary.items() if isinstance(v, (int, float)) and v is not None}
        tracker.log_metrics(metrics)
        for name in ("eval.json", "curve.png"):
            tracker.log_artifact(folder / name)
        tracker.end_run()
    except BaseException:
        tracker.end_run(status="FAILED")
        raise
