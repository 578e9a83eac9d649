"""Router selection latency: what a learned selector adds to each query, measured per query.

Trains (or loads) a router on the 18-model GSM8K pool, then times `LearnedSelector.select` on
held-out questions one at a time, the way the pipeline calls it: embed the question with the
router's embedder (minilm-int8 by default; no cache: a new query is never cached), predict every
proposer's success and $, choose the subset. The baseline in the same run is the default selector (every proposer), and the
embedding alone is timed too, so the table shows where the time goes. A router that calls a static
subset at some λ (training found routing no better there) answers those without embedding: it is
timed at the λ nearest --lam where it routes and, if any, where it is static.

    python benchmarks/router_latency.py [--data data:gsm8k] [--artifact DIR] [--queries 300]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from moa_lab.benchmarks import find_data
from moa_lab.embedding import build_embedder
from moa_lab.routing import load_routing_data, train
from moa_lab.selection import AllProposers, Router, build_selector
from moa_lab.topology import AgentSpec, SelectorSpec


def timed(fn, items):  # type: ignore[no-untyped-def]
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, ms: list[float], base: float) -> str:
    p50, p95 = statistics.median(ms), float(np.percentile(ms, 95))
    return f"{name:<52}{p50:>9.2f}{p95:>9.2f}{max(ms):>9.2f}{p50 / base if base else float('nan'):>10.1f}"


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data:gsm8k")
    parser.add_argument("--artifact", help="a trained router (default: train one into a temporary folder)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--lam", type=float, default=100.0)
    args = parser.parse_args()
    args.data = str(find_data(args.data, root)) if args.data.startswith("data:") else args.data  # pulled, or ../shared/data
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(args.artifact) if args.artifact else Path(tmp) / "router"
        if not args.artifact:
            start = time.perf_counter()
            train(args.data, artifact)
            print(f"trained a router in {time.perf_counter() - start:.1f} s")
        router = Router.load(artifact)
        data = load_routing_data(args.data, **router.meta["training"].get("data_args", {}))
        _, test = data.split(router.meta["training"]["split"]["test_fraction"], router.meta["training"]["split"]["seed"])
        queries = [data.queries[i] for i in test[: args.queries]]
        pool = [AgentSpec(**p) for p in router.proposers]
        routes = [p.lam for p in router.operating if p.routes] or [args.lam]
        statics = [p.lam for p in router.operating if not p.routes]
        near = lambda lams: min(lams, key=lambda v: abs(np.log1p(v) - np.log1p(args.lam)))  # noqa: E731
        lams = {"routes": near(routes)} | ({"static": near(statics)} if statics else {})
        selectors = {kind: build_selector(SelectorSpec(kind="learned", path=str(artifact), lam=lam)) for kind, lam in lams.items()}
        for learned in selectors.values():
            learned.select(queries[0], pool)  # load the embedding model and bind the pool once, as a pipeline does
        embedder = build_embedder(router.meta["embedder"]["spec"])
        embedder.encode(["warm up"])
        everyone = AllProposers()
        base = timed(lambda q: everyone.select(q, pool), queries)
        embed = timed(lambda q: embedder.encode([q]), queries)
        timings = {kind: timed(lambda q: sel.select(q, pool), queries) for kind, sel in selectors.items()}
        # the subset rule on its own where it searches widest (λ = 0: subsets as large as the pool allows),
        # whether or not the router routes there: the worst case of the "choose" step
        x = embedder.encode(queries)
        probs, usd = router.success(x), router.cost(np.array([len(q) for q in queries]))
        rule = timed(lambda i: router.rule.choose(probs[i], usd[i], lam=0.0, x=x[i]), range(len(queries)))
        sizes = {kind: statistics.mean(len(sel.select(q, pool)) for q in queries) for kind, sel in selectors.items()}
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{len(queries)} held-out GSM8K questions one at a time, {len(pool)} proposers")
    print(f"{'selector':<52}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'x embed':>10}")
    e50 = statistics.median(embed)
    print(row("all proposers (the default, baseline)", base, e50))
    spec = router.meta["embedder"]["spec"]
    print(row(f"embedding alone ({spec if isinstance(spec, str) else spec.get('kind', 'minilm')})", embed, e50))
    for kind, ms in timings.items():
        what = "embed + predict + choose" if kind == "routes" else "static subset, no embedding"
        print(row(f"learned, λ = {lams[kind]:g} ({what})", ms, e50))
    print(row("subset rule alone at λ = 0 (its widest search)", rule, e50))
    for kind, ms in timings.items():
        print(f"λ = {lams[kind]:g} ({kind}): p95 {float(np.percentile(ms, 95)):.2f} ms (target < 20 ms); "
              f"minus embedding p50 {statistics.median(ms) - e50:.2f} ms; proposers chosen per query {sizes[kind]:.2f}")

if __name__ == "__main__":
    main()
