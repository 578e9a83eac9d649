"""`moa-lab router diverse`: build the reference set a `diverse` selector reads, and compare it with
top-k and random-k on the held-out split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from moa_lab.cli._router import EMBEDDER_HELP, console, dataset_path, router_app


@router_app.command("diverse")
def diverse_(
    data: Annotated[Path, typer.Argument(help="A recorded-dataset folder (GSM8K layout, e.g. data:gsm8k) or an evaluation RunLog (.jsonl) of the pool.")],
    out: Annotated[Path, typer.Option(help="Reference folder to write.")],
    embedder: Annotated[Optional[str], typer.Option(help=EMBEDDER_HELP + ".")] = None,
    diversity: Annotated[float, typer.Option(help="Default weight of dissimilar mistakes against competence (1 = a determinantal point process, 0 = the k most competent).")] = 1.0,
    compare: Annotated[str, typer.Option(help="Sizes k at which to compare diverse, top-k and random-k on the held-out split (comma-separated; empty for none).")] = "2,3,5",
    test_fraction: Annotated[float, typer.Option(help="Share of queries held out for the comparison.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the split and of random-k.")] = 0,
    labels: Annotated[bool, typer.Option("--labels", help="Judge competence and mistakes by the scores instead of the pool's consensus (a diagnostic where the consensus is often wrong).")] = False,
    all_rows: Annotated[bool, typer.Option("--all", help="Build from every query (for deployment; nothing left to compare on).")] = False,
    scorer: Annotated[str, typer.Option(help="Scorer for recorded answers (only the comparison reads scores).")] = "numeric",
    extractor: Annotated[Optional[str], typer.Option(help="Answer extractor that says which answers are the same (default: answer for recorded data, normalized for RunLogs).")] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name in the proposers' model refs (recorded data).")] = "replay",
    prices: Annotated[Optional[Path], typer.Option(help="YAML of extra list prices ({model: {input, output}}, $ per million tokens).")] = None,
) -> None:
    """Build a diverse selector's reference set: how each proposer's recorded answers stand to the
    pool's consensus, per reference query (no labels read unless --labels). Use it with
    `selector: {kind: diverse, path: OUT, k: 3}`."""
    data = dataset_path(data)
    from moa_lab.routing import build_reference, compare_selectors, ratio_interval

    start = time.perf_counter()
    data_args = {"scorer": scorer, "endpoint": endpoint, "extractor": extractor or ("answer" if data.is_dir() else "normalized"),
                 "prices": str(prices.resolve()) if prices else None}
    with console.status("embedding queries and building the reference"):
        reference = build_reference(data, out, embedder=embedder, test_fraction=test_fraction, seed=seed,
                                    holdout=not all_rows, diversity=diversity, labels=labels, **data_args)
    meta, arrays = reference.meta, reference.arrays
    training = meta["training"]
    agreed = "is right" if labels else "gives the consensus"
    table = Table("proposer", agreed, title=f"reference: {training['queries']} queries, {len(meta['names'])} proposers")
    for name, share in sorted(zip(meta["names"], arrays["pool_agree"]), key=lambda t: -t[1]):
        table.add_row(name, f"{share:.3f}")
    console.print(table)
    console.print(f"neighbours {meta['neighbours']}, shrink {meta['shrink']:g} (leave-one-out log loss {training['loo_log_loss']:.4f}); "
                  f"a consensus on {training['consensus_share']:.1%} of the queries")
    ks = [int(k) for k in compare.split(",") if k.strip()]
    if ks and not all_rows:
        with console.status("replaying the held-out split"):
            result = compare_selectors(out, data, ks)
        table = Table("k", "diverse", "top-k", "top-k (train accuracy)", "random-k", "diverse / top-k [95% CI]",
                      title=f"vote accuracy on the held-out split: {len(result.test_ids)} queries")
        for k in ks:
            ratio, low, high = ratio_interval([result], "vote", "diverse", "top-k", k)
            table.add_row(str(k), *(f"{result.get(m, k).vote.mean():.3f}" for m in ("diverse", "top-k", "top-k-train", "random-k")),
                          f"{ratio:.3f} [{low:.3f}, {high:.3f}]")
        console.print(table)
    console.print(f"reference: {out}   (total {time.perf_counter() - start:.1f} s)")
