"""The diverse selector against top-k and random-k at equal k, on two pools.

(a) The 18 recorded models of ../shared/data/gsm8k. Per seed: the reference set is built from 70%
    of the questions (`build_reference`, the artifact `moa-lab router diverse` writes) and every
    method is replayed on the other 30% as a plurality vote over the recorded answers.
(b) The embedded model's prompt-variant pool: Gemma 3 270M behind 8 prompts that differ only in
    their 3 worked examples (`prompt-ensemble` over the shipped Q/A pool), every variant called on
    every item of the built-in Q/A tasks capitals, plurals and animal_legs (one RunLog, cached calls),
    then the same replay per seed; and one live run of `selector: {kind: diverse}` on a held-out
    split, whose accuracy must equal its replay.

Methods at each k: `diverse`; `top-k`, the k most competent by the same label-free competence
(diversity 0); `top-k-train`, the k most accurate on the training split (labels); `random-k`, the
mean of 20 random draws per query. Each pool is then measured again with a reference built from the
labels (`--labels`: competence is being right, a mistake a wrong answer), a diagnostic of what the
label-free consensus costs. Printed per k: the vote's accuracy, the share of queries where
any chosen proposer is right, $ per query, and diverse's ratio to each baseline with a 95%
bootstrap interval (questions resampled, all splits a question is held out in kept together).

    python benchmarks/selector_diversity.py [--seeds 0 1 2 3 4] [--skip-embedded] [--skip-gsm8k]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path

import numpy as np

from moa_lab.benchmarks import find_data
from moa_lab.core import Sample
from moa_lab.routing import Comparison, build_reference, compare_selectors, ratio_interval

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ("top-k", "top-k-train", "random-k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data:gsm8k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5, 7, 9])
    parser.add_argument("--embedded-ks", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--out", default=str(ROOT / "runs" / "selector-diversity"))
    parser.add_argument("--skip-gsm8k", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--router-diversity", type=float, nargs="*", default=[0.0, 0.003, 0.01, 0.03, 0.1],
                        help="(c) the learned router's diversity knob on GSM8K seed 0 at these weights (none: skip)")
    args = parser.parse_args()
    args.data = str(find_data(args.data, ROOT)) if args.data.startswith("data:") else args.data  # pulled, or ../shared/data
    out = Path(args.out)
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.skip_gsm8k:
        start = time.perf_counter()
        runs = [_split(args.data, out / f"gsm8k-seed{s}", s, args.ks) for s in args.seeds]
        _table(f"(a) GSM8K, 18 recorded models, seeds {args.seeds}", runs, args.ks, dollars=True)
        _choice_time(args.data, out / f"gsm8k-seed{args.seeds[0]}", runs[0])
        runs = [_split(args.data, out / f"gsm8k-labels-seed{s}", s, args.ks, labels=True) for s in args.seeds]
        _table("(a') the same with a labelled reference (diagnostic: competence = being right)", runs, args.ks, dollars=True)
        print(f"({time.perf_counter() - start:.0f} s)")
    if args.router_diversity and not args.skip_gsm8k:
        _router_knob(args.data, out / "gsm8k-router-seed0", args.router_diversity)
    if not args.skip_embedded:
        start = time.perf_counter()
        runlog = _embedded_pool(out / "embedded-pool.jsonl")
        runs = [_split(runlog, out / f"embedded-seed{s}", s, args.embedded_ks, extractor="exact") for s in args.seeds]
        _table(f"(b) embedded model, 8 prompt variants, seeds {args.seeds}", runs, args.embedded_ks, dollars=False)
        _live_check(runlog, out / f"embedded-seed{args.seeds[0]}", out / "embedded-live.jsonl", runs[0])
        runs = [_split(runlog, out / f"embedded-labels-seed{s}", s, args.embedded_ks, labels=True, extractor="exact")
                for s in args.seeds]
        _table("(b') the same with a labelled reference (diagnostic: competence = being right)", runs, args.embedded_ks,
               dollars=False)
        print(f"({time.perf_counter() - start:.0f} s)")


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def _split(source: str | Path, folder: Path, seed: int, ks: list[int], *, labels: bool = False,
           **data_args: str) -> Comparison:
    build_reference(source, folder, seed=seed, labels=labels, **data_args)
    return compare_selectors(folder, source, ks)


def _table(title: str, runs: list[Comparison], ks: list[int], *, dollars: bool) -> None:
    """Per k: each method's means over the splits, then diverse / baseline with its interval."""
    print(f"\n{title}: {len(runs[0].test_ids)} held-out of {len(runs[0].test_ids) + runs[0].train_queries} queries per split")
    methods = ("diverse", *BASELINES)
    print(f"{'k':>3} {'metric':<10}" + "".join(f"{m:>13}" for m in methods)
          + "".join(f"{'diverse/' + b:>28}" for b in BASELINES))
    for k in ks:
        metrics = [("vote", "vote acc"), ("any_right", "any right")] + ([("usd", "$/query")] if dollars else [])
        for metric, label in metrics:
            means = [np.concatenate([getattr(r.get(m, k), metric) for r in runs]).mean() for m in methods]
            cells = "".join(f"{v:>13.2e}" if metric == "usd" else f"{v:>13.4f}" for v in means)
            ratios = ""
            for b in BASELINES:
                ratio, low, high = ratio_interval(runs, metric, "diverse", b, k)
                ratios += f"{f'{ratio:.4f} [{low:.4f}, {high:.4f}]':>28}"
            print(f"{k if metric == 'vote' else '':>3} {label:<10}{cells}{ratios}")


def _choice_time(data: str, folder: Path, run: Comparison, k: int = 3) -> None:
    """What choosing adds per query once the query is embedded (the embedding is the learned
    router's, timed by benchmarks/router_latency.py): `Reference.choose` on each held-out question."""
    from moa_lab.routing import embed_data
    from moa_lab.selection import Reference

    reference = Reference.load(folder)
    loaded = embed_data(data, reference.meta["embedder"]["spec"])
    rows = [loaded.data.ids.index(q) for q in run.test_ids]
    ms = []
    for i in rows:
        start = time.perf_counter()
        reference.choose(loaded.x[i], k=k)
        ms.append((time.perf_counter() - start) * 1000)
    print(f"choosing k={k} from the reference ({reference.meta['training']['queries']} queries, "
          f"{reference.meta['neighbours']} neighbours): p50 {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms per query")


def _router_knob(data: str, folder: Path, weights: list[float]) -> None:
    """The learned router's λ sweep on GSM8K seed 0 at each diversity weight: curve area, the
    accuracy at λ = 0, and the $ at which it first reaches the best single model's accuracy."""
    from moa_lab.routing import LAMBDAS, Point, TrainConfig, embed_data, train
    from moa_lab.routing._evaluate import _area
    from moa_lab.selection import Router, vote_routed

    if not (folder / "router.json").is_file():
        train(data, folder, seed=0, config=TrainConfig(seed=0))
    router = Router.load(folder)
    loaded = embed_data(data, router.meta["embedder"]["spec"])
    d = loaded.data
    train_rows, test = d.split(0.3, 0)
    te = d.rows(test)
    position = np.argsort(router.align(d.proposers))
    p, usd = router.success(loaded.x[test]), router.cost(np.array([len(q) for q in te.queries]))
    accuracy = np.nanmean(d.rows(train_rows).success, axis=0)
    best = int(np.argmax(accuracy))
    single_acc, single_usd = float(np.nanmean(te.success[:, best])), float(np.nanmean(te.cost[:, best]))
    lo, hi = float(np.nanmean(te.cost, axis=0).min()), float(np.nansum(te.cost, axis=1).mean())
    print(f"\n(c) the learned router's diversity knob, GSM8K seed 0 ({len(test)} held-out questions; best single on train "
          f"{d.names[best]}: {single_acc:.4f} at {single_usd:.2e} $/query)")
    print(f"{'diversity':>10}{'area':>9}{'acc λ=0':>9}{'calls λ=0':>10}{'$ at best single acc':>22}{'area / area at 0':>18}")
    base = None
    for weight in weights:
        points = []
        for lam in LAMBDAS:
            subsets = [[int(position[j]) for j in router.choose(p[i], usd[i], lam=lam, x=loaded.x[test][i], diversity=weight)]
                       for i in range(len(test))]
            points.append((lam, float(vote_routed(te.answers, te.success, subsets).mean()),
                           float(np.mean([np.nansum(te.cost[i, s]) for i, s in enumerate(subsets)])),
                           float(np.mean([len(s) for s in subsets]))))
        area = _area([Point("router", "", a, u, c) for _, a, u, c in points], lo, hi)
        base = area if base is None else base
        reach = [u for _, a, u, _ in points if a >= single_acc]
        print(f"{weight:>10g}{area:>9.4f}{points[0][1]:>9.4f}{points[0][3]:>10.2f}"
              f"{f'{min(reach):.2e} ({min(reach) / single_usd:.0%})' if reach else 'never':>22}{area / base:>18.4f}")


def _items() -> list[Sample]:
    """Every question of the Q/A built-in tasks (the items of their seeds 0-2, which hold back
    different examples), less those among the prompt pool's examples, in a fixed order."""
    from moa_lab.benchmarks import builtin_task
    from moa_lab.topology._tasks import qa_pool

    shown = {q for q, _ in qa_pool()[1]}
    out: dict[str, Sample] = {}
    for name in ("capitals", "plurals", "animal_legs"):
        found = {s.input: s.target for seed in (0, 1, 2) for s in builtin_task(name, items=1000, seed=seed).items}
        for i, (question, target) in enumerate(sorted(found.items())):
            if question not in shown:
                out[question] = Sample(question, target, f"{name}-{i}", {"task": name})
    return list(out.values())


def _pool_spec():  # type: ignore[no-untyped-def]
    from moa_lab.topology import AgentSpec, preset

    spec = preset("prompt-ensemble", k=8, per_proposer=3, temperature=0.0, max_tokens=8)
    return spec.model_copy(update={"aggregator": AgentSpec(agent="vote", extractor="exact")})


def _models():  # type: ignore[no-untyped-def]
    from moa_lab.core import default_cache_dir
    from moa_lab.models import ModelSet, SqliteCache

    return ModelSet(cache=SqliteCache(default_cache_dir() / "calls.sqlite"), local_slots=4)


def _embedded_pool(runlog: Path) -> Path:
    """Every variant on every item, once: a RunLog (resumed when it exists; calls are cached).
    Each variant first runs alone over every item, so the server holds one prompt prefix in all its
    slots and evaluates only each question's tokens; the pool run then reads every call from the cache."""
    from moa_lab.evaluation import evaluate
    from moa_lab.registry import build
    from moa_lab.topology import LayerSpec, TopologySpec

    runlog.parent.mkdir(parents=True, exist_ok=True)
    samples, spec = _items(), _pool_spec()

    async def run():  # type: ignore[no-untyped-def]
        async with _models() as models:
            for i, proposer in enumerate(spec.layers[0].proposers):
                alone = TopologySpec(name=f"variant-{i + 1}", layers=(LayerSpec(proposers=(proposer,)),))
                warm = runlog.parent / "variants" / f"variant-{i + 1}.jsonl"
                warm.parent.mkdir(exist_ok=True)
                await evaluate(alone, samples, models, None, runlog=warm, resume=warm.exists(), concurrency=4)
            return await evaluate(spec, samples, models, build("scorer", "exact"), runlog=runlog,
                                  label="prompt-variants", resume=runlog.exists(), concurrency=4)

    summary = asyncio.run(run())
    print(f"\nembedded pool: {len(samples)} items × 8 variants ({summary.cached_calls} of {summary.calls} calls from the "
          f"cache); vote of all 8: accuracy {summary.quality}, any variant right {summary.oracle}")
    return runlog


def _live_check(runlog: Path, reference: Path, live: Path, replay: Comparison, k: int = 3) -> None:
    """The selector in a live topology on the held-out items of one split: its accuracy and calls
    beside the replayed ones (the calls come from the cache, so the answers are the recorded ones)."""
    from moa_lab.evaluation import evaluate
    from moa_lab.registry import build
    from moa_lab.topology import SelectorSpec

    held = set(replay.test_ids)
    samples = [s for s in _items() if s.id in held]
    spec = _pool_spec().model_copy(update={"selector": SelectorSpec(kind="diverse", path=str(reference), k=k)})
    live.unlink(missing_ok=True)

    async def run():  # type: ignore[no-untyped-def]
        async with _models() as models:
            return await evaluate(spec, samples, models, build("scorer", "exact"), runlog=live, label="diverse-live",
                                  concurrency=4)

    summary = asyncio.run(run())
    replayed = float(replay.get("diverse", k).vote.mean())
    print(f"live `selector: {{kind: diverse, k: {k}}}` on {len(samples)} held-out items: accuracy "
          f"{summary.quality} (replayed {replayed:.4f}), {summary.calls} calls ({summary.calls / len(samples):.1f} per item)")


if __name__ == "__main__":
    main()
