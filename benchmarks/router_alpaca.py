"""A `single` router on the AlpacaEval verdict pool (one system per instruction), over several
held-out splits, side by side with the best single system chosen on the training split.

For each seed: train on 70% of the instructions (minilm-int8 embeddings through the on-disk cache),
replay the other 30% for the router's λ sweep and for every system alone, and print one row: the
best single system chosen on the training split with its held-out win rate and $ per instruction;
the $ at which the router first matches that win rate (and its share of the best single's $); the
router's best win rate at no more than the best single's $; and the win-rate-vs-$ curve areas of the
router and of the single systems' front chosen on the training split. Every number is in
OUT/seed<N>/eval/eval.json.

    python benchmarks/router_alpaca.py [--data data:alpaca_eval/annotations]
        [--prices experiments/prices/alpaca_eval.yaml] [--seeds 0 1 2 3 4] [--out runs/router-alpaca]
        [--sources openai-2024,anthropic-2024]

`--sources` keeps only the price file's entries with those sources (the others are then left out as
unpriced), e.g. the systems whose provider lists a price for that very model.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from pathlib import Path

from moa_lab.benchmarks import find_data
from moa_lab.routing import TrainConfig, evaluate, train


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data:alpaca_eval/annotations")
    parser.add_argument("--prices", default=str(root / "experiments" / "prices" / "alpaca_eval.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--kinds", default="knn,logistic,mlp,mf", help="predictor kinds cross-validation chooses from")
    parser.add_argument("--out", default=str(root / "runs" / "router-alpaca"))
    parser.add_argument("--sources", help="keep only the prices with these sources (comma-separated keys of `sources:`)")
    args = parser.parse_args()
    args.data = str(find_data(args.data, root)) if args.data.startswith("data:") else args.data  # pulled, or ../shared/data
    if args.sources:
        args.prices = str(_only_sources(Path(args.prices), args.sources.split(","), Path(args.out)))
    print(f"{datetime.date.today()}; machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}; data {args.data}; prices {args.prices}")
    print(f"{'seed':>4} {'best single (train)':<31}{'win %':>7}{'$/instr':>10}{'router $ there':>15}{'share':>7}"
          f"{'router win % at its $':>22}{'area router':>12}{'area single':>12}{'s':>6}")
    wins, shares = 0, []
    for seed in args.seeds:
        start = time.perf_counter()
        folder = Path(args.out) / f"seed{seed}"
        config = TrainConfig(aggregator="single", seed=seed, kinds=tuple(args.kinds.split(",")))
        router = train(args.data, folder, seed=seed, config=config, prices=args.prices)
        result, _ = evaluate(folder, args.data, mlflow=False)
        s = result.summary
        best = s["best_single"]
        ratio, at = s["router_cost_ratio_at_best_single_accuracy"], s["router_matches_best_single_at_usd"]
        within = s["router_best_accuracy_within_best_single_cost"]
        wins += s["area_router"] > s["area_static_best"]
        if ratio is not None:
            shares.append(ratio)
        print(f"{seed:>4} {best['label'][:30]:<31}{best['accuracy'] * 100:>7.2f}{best['usd']:>10.2e}"
              f"{f'{at:.2e}' if at is not None else 'never':>15}{f'{ratio:.1%}' if ratio is not None else '-':>7}"
              f"{f'{within * 100:.2f}' if within is not None else '-':>22}"
              f"{s['area_router']:>12.4f}{s['area_static_best']:>12.4f}{time.perf_counter() - start:>6.0f}")
    left_out = router.meta["training"]["left_out"]
    print(f"pool: {len(router.proposers)} systems; left out {len(left_out)}: {', '.join(sorted(left_out))}")
    print(f"router area larger than the best single systems' (chosen on train) on {wins} of {len(args.seeds)} splits; "
          f"it matches the best single's held-out win rate on {len(shares)} of {len(args.seeds)}"
          + (f", at a median {statistics.median(shares):.1%} of its $ (range {min(shares):.1%}–{max(shares):.1%})" if shares else ""))


def _only_sources(path: Path, keep: list[str], out: Path) -> Path:
    """A copy of the price file (in `out`) with only the entries whose source is in `keep`."""
    import yaml

    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = [k for k in keep if k not in spec["sources"]]
    if unknown:
        raise SystemExit(f"{path}: no source {unknown[0]!r} (known: {', '.join(spec['sources'])})")
    spec["models"] = {name: entry for name, entry in spec["models"].items() if entry["source"] in keep}
    out.mkdir(parents=True, exist_ok=True)
    (out / "prices.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out / "prices.yaml"


if __name__ == "__main__":
    main()
