"""`moa-lab router train|eval`: learn a per-query proposer selector and measure it on held-out queries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

def dataset_path(path: Path) -> Path:
    """`data:NAME/...` as the dataset's folder (pulled or in ../shared/data), other paths as given."""
    if str(path).startswith("data:"):
        from moa_lab.benchmarks import find_data
        from moa_lab.evaluation import project_root

        return find_data(str(path), project_root(Path.cwd()))
    return path


router_app = typer.Typer(no_args_is_help=True, help="Train and evaluate learned routers (per-query proposer selection).")
console = Console()


@router_app.command("train")
def train_(
    data: Annotated[Path, typer.Argument(help="A recorded-dataset folder (GSM8K layout, e.g. data:gsm8k), a folder of AlpacaEval judge verdicts (data:alpaca_eval/annotations) or an evaluation RunLog (.jsonl).")],
    out: Annotated[Path, typer.Option(help="Artifact folder to write.")],
    aggregator: Annotated[str, typer.Option(help="The aggregator the subsets feed: vote or synthesize; single routes one proposer per query (judge verdicts).")] = "vote",
    embedder: Annotated[str, typer.Option(help="Embedder: minilm (all-MiniLM-L6-v2) or hash.")] = "minilm",
    kinds: Annotated[str, typer.Option(help="Predictor kinds cross-validation chooses from (comma-separated).")] = "knn,logistic,mlp,mf",
    test_fraction: Annotated[float, typer.Option(help="Share of queries held out for `router eval`.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the split, the folds and the models.")] = 0,
    all_rows: Annotated[bool, typer.Option("--all", help="Train on every query (for deployment; nothing left to evaluate on).")] = False,
    lam: Annotated[float, typer.Option("--lambda", help="Default λ: quality points one dollar is worth.")] = 0.0,
    k: Annotated[Optional[int], typer.Option(help="Default size limit of a query's subset.")] = None,
    max_usd: Annotated[Optional[float], typer.Option(help="Default $ limit per query.")] = None,
    scorer: Annotated[str, typer.Option(help="Scorer for recorded answers.")] = "numeric",
    extractor: Annotated[Optional[str], typer.Option(help="Answer extractor a vote compares (default: answer for recorded data, normalized for RunLogs).")] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name in the proposers' model refs (recorded data).")] = "replay",
    prices: Annotated[Optional[Path], typer.Option(help="YAML of extra list prices ({model: {input, output}}, $ per million tokens).")] = None,
) -> None:
    """Train a router and write its artifact folder."""
    data = dataset_path(data)
    from moa_lab.routing import TrainConfig, train

    start = time.perf_counter()
    config = TrainConfig(aggregator=aggregator, kinds=tuple(k_.strip() for k_ in kinds.split(",") if k_.strip()),
                         seed=seed, lam=lam, k=k, max_usd=max_usd)
    data_args = {"scorer": scorer, "endpoint": endpoint, "extractor": extractor or ("answer" if data.is_dir() else "normalized"),
                 "prices": str(prices.resolve()) if prices else None}
    with console.status("embedding queries and training"):
        router = train(data, out, embedder=embedder, test_fraction=test_fraction, seed=seed, holdout=not all_rows,
                       config=config, **data_args)
    meta = router.meta
    table = Table("proposer", "predictor", "CV log loss", "vs constant", title=f"router: {len(router.proposers)} proposers")
    for name, pred in zip(meta["names"], meta["predictors"]):
        loss = pred["cv_log_loss"]
        table.add_row(name, pred["kind"], f"{loss[pred['kind']]:.4f}", f"{loss[pred['kind']] - loss['constant']:+.4f}")
    console.print(table)
    training = meta["training"]
    console.print(f"trained on {training['queries']} queries in {training['seconds']:.1f} s "
                  f"(embeddings {training['embedding_seconds']:.1f} s); vote error mix {meta.get('vote_mix', '-')}")
    for name, why in training.get("left_out", {}).items():
        console.print(f"left out {name}: {why}")
    console.print(f"artifact: {out}   (total {time.perf_counter() - start:.1f} s)")


@router_app.command("eval")
def eval_(
    artifact: Annotated[Path, typer.Argument(help="A router artifact folder from `router train`.")],
    data: Annotated[Path, typer.Argument(help="The data it was trained from, e.g. data:gsm8k (its held-out split is replayed).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for eval.json and curve.png (default: ARTIFACT/eval).")] = None,
    k: Annotated[Optional[int], typer.Option(help="Size limit of the router's subsets.")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation to MLflow.")] = True,
) -> None:
    """Replay the router and every baseline on the held-out split: accuracy, $ and calls per query,
    curve areas, and the share of the best-single-to-oracle gap recovered."""
    data = dataset_path(data)
    from moa_lab.routing import evaluate

    start = time.perf_counter()
    with console.status("replaying the held-out split"):
        result, folder = evaluate(artifact, data, out=out, k=k, mlflow=mlflow)
    table = Table("method", "config", result.summary.get("quality", "accuracy"), "$/query", "calls/query", "area",
                  title=f"held-out split: {result.test_queries} queries (trained on {result.train_queries})")
    for method in result.methods:
        pts = result.curve(method)
        shown = pts if len(pts) <= 3 else _spread(pts)
        for i, p in enumerate(shown):
            area = result.area[method]
            table.add_row(method if i == 0 else "", p.label[:48], f"{p.accuracy:.3f}", f"{p.usd:.2e}", f"{p.calls:.2f}",
                          f"{area:.4f}" if i == 0 and area == area else "")
    console.print(table)
    s = result.summary
    best = s["best_single"]
    ratio = s["router_cost_ratio_at_best_single_accuracy"]
    console.print(f"best single (chosen on train): {best['label']} {best['accuracy']:.3f} at ${best['usd']:.2e}/query; "
                  f"oracle {s['oracle']['accuracy']:.3f}")
    console.print("router reaches it at " + (f"${s['router_matches_best_single_at_usd']:.2e}/query = {ratio:.1%} of its cost"
                                             if ratio is not None else "no λ swept (never as accurate)"))
    gap, within = s["gap_recovered"], s["router_best_accuracy_within_best_single_cost"]
    console.print("best router accuracy within the best single's cost: " + (f"{within:.3f}" if within is not None else "none")
                  + "; best-single-to-oracle gap recovered: " + (f"{gap:.1%}" if gap is not None else "n/a (no gap)"))
    console.print(f"curve area: router {s['area_router']:.4f} vs best static subset (chosen on train) {s['area_static_best']:.4f}")
    console.print(f"written: {folder / 'eval.json'}, {folder / 'curve.png'}   ({time.perf_counter() - start:.1f} s)")


def _spread(points: list) -> list:  # type: ignore[type-arg]
    """At most 9 points of a long curve, spread over it, its ends included."""
    if len(points) <= 9:
        return points
    idx = sorted({round(i * (len(points) - 1) / 8) for i in range(9)})
    return [points[i] for i in idx]
