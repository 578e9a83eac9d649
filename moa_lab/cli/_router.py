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
EMBEDDER_HELP = "Embedder: minilm-int8 (the default: all-MiniLM-L6-v2 in 8-bit integers, about half minilm's time per query), minilm or hash"


@router_app.command("train")
def train_(
    data: Annotated[Path, typer.Argument(help="A recorded-dataset folder (GSM8K layout, e.g. data:gsm8k), a folder of AlpacaEval judge verdicts (data:alpaca_eval/annotations) or an evaluation RunLog (.jsonl).")],
    out: Annotated[Path, typer.Option(help="Artifact folder to write.")],
    aggregator: Annotated[str, typer.Option(help="The aggregator the subsets feed: vote or synthesize; single routes one proposer per query (judge verdicts).")] = "vote",
    embedder: Annotated[Optional[str], typer.Option(help=EMBEDDER_HELP + ".")] = None,
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
    artifact: Annotated[Path, typer.Argument(help="A router artifact folder from `router train` (with --subpools: the folder to write the sub-pools' artifacts to).")],
    data: Annotated[Path, typer.Argument(help="The data it was trained from, e.g. data:gsm8k (its held-out split is replayed).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for eval.json and curve.png (default: ARTIFACT/eval).")] = None,
    k: Annotated[Optional[int], typer.Option(help="Size limit of the router's subsets.")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation to MLflow.")] = True,
    subpools: Annotated[Optional[int], typer.Option(help="Instead: train and evaluate on this many random sub-pools of DATA's proposers.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Proposers per sub-pool (with --subpools).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sub-pool draws; sub-pool i splits and trains with seed + i (with --subpools).")] = 0,
    embedder: Annotated[Optional[str], typer.Option(help=EMBEDDER_HELP + ", for sub-pool routers (with --subpools).")] = None,
    scorer: Annotated[str, typer.Option(help="Scorer for recorded answers (with --subpools).")] = "numeric",
    extractor: Annotated[Optional[str], typer.Option(help="Answer extractor a vote compares (with --subpools; default as `router train`).")] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name in the proposers' model refs (with --subpools).")] = "replay",
    prices: Annotated[Optional[Path], typer.Option(help="YAML of extra list prices (with --subpools; a trained router remembers its own).")] = None,
) -> None:
    """Replay the router and every baseline on the held-out split: accuracy, $ and calls per query,
    curve areas, the per-λ choice between routing and static subsets, the learned cascades, and the
    share of the best-single-to-oracle gap recovered. With --subpools N --size M: train and evaluate
    on N random sub-pools of M proposers and count where the router and the cascade beat static."""
    data = dataset_path(data)
    if subpools is not None or size is not None:
        if subpools is None or size is None:
            raise typer.BadParameter("--subpools and --size go together (e.g. --subpools 20 --size 9)")
        data_args = {"scorer": scorer, "endpoint": endpoint, "extractor": extractor or ("answer" if data.is_dir() else "normalized"),
                     "prices": str(prices.resolve()) if prices else None}
        _subpools(artifact, data, subpools, size, seed, embedder, data_args)
        return
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
    if s.get("choices"):
        console.print(_choices(s["choices"]))
    best = s["best_single"]
    console.print(f"best single (chosen on train): {best['label']} {best['accuracy']:.3f} at ${best['usd']:.2e}/query; "
                  f"oracle {s['oracle']['accuracy']:.3f}")
    for method, key in (("router", "router"), ("cascade", "cascade"), ("best static subset", "static")):
        ratio = s.get(f"{key}_cost_ratio_at_best_single_accuracy")
        if key == "cascade" and s.get("area_cascade") is None:
            continue
        console.print(f"{method} reaches it at " + (f"{ratio:.1%} of its $" if ratio is not None else "no point (never as accurate)"))
    gap, within = s["gap_recovered"], s["router_best_accuracy_within_best_single_cost"]
    console.print("best router accuracy within the best single's cost: " + (f"{within:.3f}" if within is not None else "none")
                  + "; best-single-to-oracle gap recovered: " + (f"{gap:.1%}" if gap is not None else "n/a (no gap)"))
    cascade = f", cascade {s['area_cascade']:.4f}" if s.get("area_cascade") is not None else ""
    console.print(f"curve area: router {s['area_router']:.4f}{cascade} vs best static subset (chosen on train) {s['area_static_best']:.4f}")
    console.print(f"written: {folder / 'eval.json'}, {folder / 'curve.png'}   ({time.perf_counter() - start:.1f} s)")


def _choices(choices: list[dict]) -> Table:  # type: ignore[type-arg]
    """Per trained λ: routing or the static subset, and routing's cross-validated gain."""
    table = Table("λ", "chose", "static alternative", "CV gain of routing", title="per λ: routing or the best static subset (cross-validated on train)")
    for c in choices:
        table.add_row(f"{c['lam']:g}", "route" if c["routes"] else "static", c["static"][:60],
                      f"{c['gain'] * 100:+.2f} ± {c['stderr'] * 100:.2f} pts")
    return table


def _subpools(folder: Path, data: Path, pools: int, size: int, seed: int, embedder: str | None, data_args: dict) -> None:  # type: ignore[type-arg]
    from moa_lab.routing import as_embedder_spec, embed_data, evaluate_subpools

    start = time.perf_counter()
    spec = as_embedder_spec(embedder)
    with console.status("embedding queries"):
        loaded = embed_data(data, spec, **data_args)
    table = Table("pool", "best single (train)", "area router", "area cascade", "area static", "router $", "cascade $", "static $",
                  title=f"{pools} random sub-pools of {size} of {len(loaded.data.proposers)} proposers "
                        "($: share of the best single's $ at its held-out accuracy)")

    def share(v: float | None) -> str:
        return f"{v:.1%}" if v is not None else "never"

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        console.print(f"pool {p.index}: router {p.area_router:.4f} cascade {p.area_cascade or float('nan'):.4f} "
                      f"static {p.area_static:.4f}; cascade $ {share(p.cascade_share)}")

    report = evaluate_subpools(loaded, spec, pools=pools, size=size, seed=seed, out=folder, progress=progress)
    for p in report.pools:
        table.add_row(str(p.index), p.best_single[:28], f"{p.area_router:.4f}",
                      f"{p.area_cascade:.4f}" if p.area_cascade is not None else "-", f"{p.area_static:.4f}",
                      share(p.router_share), share(p.cascade_share), share(p.static_share))
    console.print(table)
    median = report.cascade_median_share
    console.print(f"router area ≥ static in {report.router_wins} of {pools}; cascade area ≥ static in {report.cascade_wins} of {pools}; "
                  f"cascade's $ at the best single's accuracy: median {share(median) if median != float('inf') else 'never'}")
    console.print(f"written: {folder / 'subpools.json'}   ({time.perf_counter() - start:.1f} s)")


def _spread(points: list) -> list:  # type: ignore[type-arg]
    """At most 9 points of a long curve, spread over it, its ends included."""
    if len(points) <= 9:
        return points
    idx = sorted({round(i * (len(points) - 1) / 8) for i in range(9)})
    return [points[i] for i in idx]
