"""The learned router on the 18-model GSM8K pool, over several held-out splits.

For each seed: train on 70% of the questions (embeddings through the on-disk cache), replay the
other 30% for the router and every baseline, and print one row: the best single model chosen on the
training split and its held-out accuracy and $ per query; what the router costs at that accuracy
(as a share of the best single's $) and what the cheapest static subset at that accuracy costs; the best-single-to-oracle gap it recovers within that price;
and the curve areas of the router and of the best static subsets chosen on the training split.

    python benchmarks/router_gsm8k.py [--data ../shared/data/gsm8k] [--seeds 0 1 2 3 4] [--out runs/router-bench]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from moa_lab.routing import evaluate, train


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(root.parent / "shared" / "data" / "gsm8k"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default=str(root / "runs" / "router-bench"))
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; data {args.data}")
    header = f"{'seed':>4} {'best single (train)':<28}{'acc':>6}{'$/q':>10}{'router $ at acc':>16}{'static $ at acc':>16}{'gap rec.':>9}{'area router':>12}{'area static':>12}{'s':>6}"
    print(header)
    wins = 0
    for seed in args.seeds:
        start = time.perf_counter()
        folder = Path(args.out) / f"seed{seed}"
        train(args.data, folder, seed=seed)
        result, _ = evaluate(folder, args.data, mlflow=False)
        s = result.summary
        best = s["best_single"]
        ratio = s["router_cost_ratio_at_best_single_accuracy"]
        static = s["static_cost_ratio_at_best_single_accuracy"]
        gap = s["gap_recovered"]
        wins += s["area_router"] > s["area_static_best"]
        print(f"{seed:>4} {best['label'][:27]:<28}{best['accuracy']:>6.3f}{best['usd']:>10.2e}"
              f"{f'{ratio:.1%}' if ratio is not None else 'never':>16}{f'{static:.1%}' if static is not None else 'never':>16}{f'{gap:.0%}' if gap is not None else '-':>9}"
              f"{s['area_router']:>12.4f}{s['area_static_best']:>12.4f}{time.perf_counter() - start:>6.0f}")
    print(f"router area larger than the best static subsets' on {wins} of {len(args.seeds)} splits")


if __name__ == "__main__":
    main()
