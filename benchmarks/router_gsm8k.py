"""The learned router and its cascades on the 18-model GSM8K pool, over several held-out splits.

For each seed: train on 70% of the questions (embeddings through the on-disk cache), replay the
other 30% for the router, the cascade and every baseline, and print one row: the best single model
chosen on the training split, its held-out accuracy and $ per query; for the router (routing or the
best static subset per λ, chosen by cross-validation), the learned cascade and the best static
subsets chosen on the training split: the curve area and the $ at which each reaches the best
single's held-out accuracy, as a share of the best single's $. A last line counts the splits where
the better of router and cascade meets the targets (share ≤ 15%, area ≥ static's).

With --subpools N --size M it instead trains and evaluates on N random sub-pools of M models (seeded;
sub-pool i splits with seed + i), and counts where the router and the cascade beat static.

    python benchmarks/router_gsm8k.py [--data data:gsm8k] [--seeds 0 1 2 3 4] [--out runs/router-bench]
    python benchmarks/router_gsm8k.py --subpools 20 --size 9 [--seed 0] [--prices FILE]

--reuse reads finished splits or sub-pools back from --out (their stored eval.json) instead of redoing
them; with --only I J ... just those sub-pools are done, so slices can run side by side.
--cascades-only learns and replays only the cascades and the static subsets per split (no router).
--subpools N --cascade-bound compares, per sub-pool, the learned cascade's $ at the best single's
accuracy with the cheapest any candidate cascade reaches on the held-out questions themselves.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

from moa_lab.benchmarks import find_data
from moa_lab.routing import RouterEval, as_embedder_spec, embed_data, evaluate, evaluate_subpools, train


def share(v: float | None) -> str:
    return f"{v:.1%}" if v is not None and v < float("inf") else "never"


def splits(args: argparse.Namespace) -> None:
    print(f"{'seed':>4} {'best single (train)':<27}{'acc':>6}{'$/q':>10} | {'area router':>11}{'cascade':>9}{'static':>9}"
          f" | {'$ share router':>14}{'cascade':>9}{'static':>9} | routes at {'s':>5}")
    met_share = met_area = 0
    for seed in args.seeds:
        start = time.perf_counter()
        folder = Path(args.out) / f"seed{seed}"
        stored = folder / "eval" / "eval.json"
        if args.reuse and stored.is_file():  # numbers read back from a finished run's eval.json
            result = RouterEval.from_dict(json.loads(stored.read_text()))
        else:
            if not (args.reuse and (folder / "router.json").is_file()):
                train(args.data, folder, seed=seed, prices=args.prices, embedder=args.embedder)
            result, _ = evaluate(folder, args.data, mlflow=False)
        s = result.summary
        best = s["best_single"]
        shares = [v for v in (s["router_cost_ratio_at_best_single_accuracy"], s["cascade_cost_ratio_at_best_single_accuracy"]) if v is not None]
        met_share += bool(shares) and min(shares) <= 0.15
        met_area += max(s["area_router"], s["area_cascade"] or 0.0) >= s["area_static_best"]
        routes = sum(c["routes"] for c in s["choices"])
        print(f"{seed:>4} {best['label'][:26]:<27}{best['accuracy']:>6.3f}{best['usd']:>10.2e} | {s['area_router']:>11.4f}"
              f"{s['area_cascade'] or float('nan'):>9.4f}{s['area_static_best']:>9.4f} | {share(s['router_cost_ratio_at_best_single_accuracy']):>14}"
              f"{share(s['cascade_cost_ratio_at_best_single_accuracy']):>9}{share(s['static_cost_ratio_at_best_single_accuracy']):>9} | "
              f"{routes:>2}/{len(s['choices'])} λ {time.perf_counter() - start:>5.0f}")
    n = len(args.seeds)
    print(f"better of router and cascade: best single's accuracy at ≤ 15% of its $ on {met_share} of {n} splits; "
          f"curve area ≥ the best static subsets' on {met_area} of {n}")


def cascades_only(args: argparse.Namespace) -> None:
    """Per seed, only what needs no router: the cascades and the best static subsets, learned on the
    training split exactly as `router train` learns them, replayed on the held-out split."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from moa_lab.routing import load_routing_data
    from moa_lab.routing._cascade import candidates, front_plans, replay
    from moa_lab.routing._evaluate import _area
    from moa_lab.routing._subsets import SubsetTable
    from moa_lab.selection import vote_static

    data = load_routing_data(args.data, prices=args.prices)
    print(f"{'seed':>4} {'best single (train)':<27}{'acc':>6}{'$/q':>10} | {'area cascade':>12}{'static':>9} | {'$ share cascade':>15}{'static':>9} | {'s':>5}")
    for seed in args.seeds:
        start = time.perf_counter()
        train_rows, test_rows = data.split(0.3, seed)
        tr, te = data.rows(train_rows), data.rows(test_rows)
        with threadpool_limits(1):
            table = SubsetTable.measure(tr)
            plans = front_plans(candidates(tr, table), table)
        best = int(np.argmax(np.nanmean(tr.success, axis=0)))
        best_acc, best_usd = float(te.success[:, best].mean()), float(np.nanmean(te.cost[:, best]))
        cascade = [(float(s.mean()), float(r.mean())) for r, s, _ in (replay(p, te) for p in plans)]
        static = [(float(np.nansum(te.cost[:, table.members[i]], axis=1).mean()), float(vote_static(te.answers, te.success, table.members[i]).mean()))
                  for i in table.front()]
        lo, hi = float(np.nanmean(te.cost, axis=0).min()), float(np.nansum(te.cost, axis=1).mean())

        def area(pts: list[tuple[float, float]]) -> float:
            return _area([_Point(u, a) for u, a in pts], lo, hi)

        def at_best(pts: list[tuple[float, float]]) -> float | None:
            usd = [u for u, a in pts if a >= best_acc]
            return min(usd) / best_usd if usd else None

        print(f"{seed:>4} {data.names[best][:26]:<27}{best_acc:>6.3f}{best_usd:>10.2e} | {area(cascade):>12.4f}{area(static):>9.4f} | "
              f"{share(at_best(cascade)):>15}{share(at_best(static)):>9} | {time.perf_counter() - start:>5.0f}", flush=True)


def cascade_bound(args: argparse.Namespace) -> None:
    """Per sub-pool (the draws and splits of --subpools), how far the cascade family can go: the
    cheapest learned plan (chosen on the training split, as `router train` does) that reaches the best
    single's held-out accuracy, against the cheapest of *all* candidate cascades that does so on the
    held-out questions themselves (an upper bound no choice among the candidates can beat), with up to
    3 and up to 4 stages; each as a share of the best single's $."""
    import statistics

    import numpy as np
    from threadpoolctl import threadpool_limits

    from moa_lab.routing import load_routing_data
    from moa_lab.routing._cascade import candidates, front_plans, replay, replay_columns
    from moa_lab.routing._subsets import SubsetTable

    data = load_routing_data(args.data, prices=args.prices)
    rng = np.random.default_rng(args.seed)
    print(f"{'pool':>4} {'best single (train)':<27} | {'$ share learned':>15}{'bound, 3 stages':>17}{'4 stages':>10}")
    shares: list[list[float]] = [[], [], []]
    for i in range(args.subpools):
        pool = data.columns(sorted(int(j) for j in rng.choice(len(data.proposers), args.size, replace=False)))
        train_rows, test_rows = pool.split(0.3, args.seed + i)
        tr, te = pool.rows(train_rows), pool.rows(test_rows)
        best = int(np.argmax(np.nanmean(tr.success, axis=0)))
        target, best_usd = float(te.success[:, best].mean()), float(np.nanmean(te.cost[:, best]))
        row = []
        with threadpool_limits(1):
            table = SubsetTable.measure(tr)
            held_out = SubsetTable.measure(te, table.members, order=table.order)
            learned = [(float(r.mean()), float(s.mean())) for r, s, _ in (replay(p, te) for p in front_plans(candidates(tr, table), table))]
            row.append(min((u for a, u in learned if a >= target), default=float("inf")) / best_usd)
            for stages in (3, 4):
                found = candidates(tr, table, max_stages=stages)
                right, spend = replay_columns(held_out, found.columns, found.thresholds)
                reach = right.mean(axis=0) >= target
                row.append(float(spend.mean(axis=0)[reach].min()) / best_usd if reach.any() else float("inf"))
        for column, value in zip(shares, row):
            column.append(value)
        print(f"{i:>4} {pool.names[best][:26]:<27} | {share(row[0]):>15}{share(row[1]):>17}{share(row[2]):>10}", flush=True)
    medians = [statistics.median(c) for c in shares]
    at_most = [sum(v <= 0.10 for v in c) for c in shares]
    print(f"median: learned {share(medians[0])} ({at_most[0]} pools ≤ 10%); bound with 3 stages {share(medians[1])} "
          f"({at_most[1]}), with 4 stages {share(medians[2])} ({at_most[2]})")


class _Point:
    def __init__(self, usd: float, accuracy: float) -> None:
        self.usd, self.accuracy = usd, accuracy


def subpools(args: argparse.Namespace) -> None:
    spec = as_embedder_spec(args.embedder)
    loaded = embed_data(args.data, spec, prices=args.prices)
    print(f"{args.subpools} random sub-pools of {args.size} of {len(loaded.data.proposers)} models (draw seed {args.seed})")
    print(f"{'pool':>4} {'best single (train)':<27} | {'area router':>11}{'cascade':>9}{'static':>9} | "
          f"{'$ share router':>14}{'cascade':>9}{'static':>9} | {'s':>5}")
    clock = [time.perf_counter()]

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        print(f"{p.index:>4} {p.best_single[:26]:<27} | {p.area_router:>11.4f}{p.area_cascade or float('nan'):>9.4f}{p.area_static:>9.4f} | "
              f"{share(p.router_share):>14}{share(p.cascade_share):>9}{share(p.static_share):>9} | {now - clock[0]:>5.0f}", flush=True)
        clock[0] = now

    report = evaluate_subpools(loaded, spec, pools=args.subpools, size=args.size, seed=args.seed, out=args.out, progress=progress,
                               reuse=args.reuse, only=args.only)
    if args.only is not None:
        return
    median = report.cascade_median_share
    print(f"router area ≥ static in {report.router_wins} of {args.subpools}; cascade area ≥ static in {report.cascade_wins} of "
          f"{args.subpools}; cascade's $ at the best single's accuracy: median {share(median)}")


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data:gsm8k")
    parser.add_argument("--prices", help="YAML of extra list prices ({model: {input, output}}, $ per million tokens)")
    parser.add_argument("--embedder", help="the routers' embedder (default: the routers' default, minilm-int8; minilm, hash)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--subpools", type=int, help="train and evaluate on this many random sub-pools instead")
    parser.add_argument("--size", type=int, default=9, help="models per sub-pool")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sub-pool draws")
    parser.add_argument("--out", default=None)
    parser.add_argument("--cascades-only", action="store_true", help="per split, only the cascades and static subsets (no router: minutes, not hours)")
    parser.add_argument("--cascade-bound", action="store_true", help="with --subpools: the learned cascade against the best any candidate cascade does on the held-out questions")
    parser.add_argument("--reuse", action="store_true", help="read finished splits / sub-pools back from --out instead of redoing them")
    parser.add_argument("--only", type=int, nargs="+", help="do only these sub-pools (to run slices in parallel; then --reuse)")
    args = parser.parse_args()
    args.data = str(find_data(args.data, root)) if args.data.startswith("data:") else args.data  # pulled, or ../shared/data
    args.out = args.out or str(root / "runs" / ("router-subpools" if args.subpools else "router-bench"))
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, {date.today()}; data {args.data}")
    if args.subpools and args.cascade_bound:
        cascade_bound(args)
    elif args.subpools:
        subpools(args)
    elif args.cascades_only:
        cascades_only(args)
    else:
        splits(args)


if __name__ == "__main__":
    main()
