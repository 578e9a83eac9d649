"""Search cost: the same topology study with its budget ledger, without one, and without a call cache.

The study is `experiments/search_gsm8k_replay.yaml` (60 trials of vote subsets over the 18 recorded
GSM8K models, on the study's search split of the 1,319 questions, list prices), run from scratch
three times with the same seed, each in a fresh folder with a fresh call cache:

- as `moa-lab search` runs it: the shared call cache and the study's hard $ cap kept in its durable
  ledger (sqlite), every trial stage admitted on its worst case before any call is sent;
- the same trials with no budget at all (nothing planned, nothing admitted): the baseline the
  ledger's overhead is measured against;
- with no call cache (and no cap, only a meter): what the study would cost if trials shared nothing;
- as `moa-lab search` again, in a new study folder but on the first run's call cache (a study run
  again, with more trials or another seed): every call is answered from the cache;
- as `moa-lab search --workers 2`, from scratch with its own fresh cache and ledger: the study on both
  cores (two worker processes sharing the journal, the call cache and the ledger). Which trials run
  differs from the one-worker runs (the sampler asks for trials as the workers free up), so its
  quality may differ; its time includes starting both processes.

Replayed calls are charged at list price, so "paid" is what the study would have cost against the
real endpoints. Calls and dollars are read back from the trials' RunLogs.

    python benchmarks/search_cost.py [--trials 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from moa_lab.evaluation import Experiment, groups
from moa_lab.models import Budget, SqliteCache
from moa_lab.search import load_study, run_study, search_config, search_split, study_budget
from moa_lab.tracking import read_runlog

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "search_gsm8k_replay.yaml"


def once(folder: Path, mode: str, trials: int, workers: int = 2) -> dict[str, float]:
    """Run the study in `folder` as `mode` (ledger, none, uncached, warm, workers); its calls, $, wall
    and CPU seconds."""
    body = yaml.safe_load(STUDY.read_text())
    body["output"] = str(folder / mode)
    if mode == "workers":
        return _with_workers(folder, body, trials, workers)
    if mode in ("none", "uncached"):
        body["search"]["budget_usd"] = None
    path = STUDY.parent / f".search-cost-{mode}.yaml"  # beside the original: the same relative paths
    path.write_text(yaml.safe_dump(body))
    try:
        exp = Experiment.load(path)
    finally:
        path.unlink()
    budget = {"ledger": study_budget(exp), "warm": study_budget(exp), "none": None, "uncached": Budget()}[mode]
    models = exp.model_set(use_cache=False, budget=budget)
    cache = {"ledger": "ledger", "warm": "ledger", "none": "none"}.get(mode)  # warm: the ledger run's cache, filled
    models.cache = SqliteCache(folder / f"{cache}-calls.sqlite") if cache else None
    found: dict[str, float] = {}

    async def main() -> None:
        async with models:
            study = await run_study(exp, models, trials=trials)
        found["best"] = max(t.user_attrs["quality"] for t in study.trials if "quality" in t.user_attrs)

    wall, cpu = time.perf_counter(), time.process_time()
    try:
        asyncio.run(main())
    finally:
        if budget is not None:
            budget.close()
    found["wall"], found["cpu"] = time.perf_counter() - wall, time.process_time() - cpu
    return found | _paid(folder / mode)


def _with_workers(folder: Path, body: dict, trials: int, workers: int) -> dict[str, float]:
    """`moa-lab search --workers N` on `body` from scratch (its own call cache), timed from outside."""
    body["cache"] = str(folder / "workers-calls.sqlite")
    path = STUDY.parent / ".search-cost-workers.yaml"
    path.write_text(yaml.safe_dump(body))
    try:
        cmd = [sys.executable, "-m", "moa_lab.cli", "search", str(path), "--trials", str(trials), "--workers", str(workers)]
        before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_CHILDREN)
        study = load_study(Experiment.load(path))
    finally:
        path.unlink()
    best = max(t.user_attrs["quality"] for t in study.trials if "quality" in t.user_attrs)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"best": best, "wall": wall, "cpu": cpu} | _paid(folder / "workers")


def _paid(output: Path) -> dict[str, float]:
    """Calls made for real and $ paid, read back from the trials' RunLogs under `output`."""
    calls = [c for log in output.rglob("trial-*.jsonl") for r in read_runlog(log).records for c in r.calls]
    return {"calls": sum(1 for c in calls if not c.cached and not c.error), "usd": sum(c.cost.paid_usd for c in calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the last row (0: leave it out)")
    args = parser.parse_args()
    modes = ("ledger", "none", "uncached", "warm") + (("workers",) if args.workers > 1 else ())
    with tempfile.TemporaryDirectory() as tmp:
        rows = {mode: once(Path(tmp), mode, args.trials, args.workers) for mode in modes}
    probe = Experiment.load(STUDY)
    questions = sum(len(g.samples) for g in groups(search_split(probe, search_config(probe))))
    print(f"{args.trials}-trial study over 18 replayed GSM8K models ({questions:,} questions of the search split), "
          f"same seed; {os.cpu_count()} cores, Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<30}{'calls paid':>12}{'$ paid':>12}{'wall s':>10}{'CPU s':>8}{'best quality':>14}")
    names = {"ledger": "  cache + study ledger", "none": "  cache, no budget", "uncached": "  no cache (meter only)",
             "warm": "  again, on the filled cache", "workers": f"  {args.workers} workers, cache + ledger"}
    for mode, name in ((m, names[m]) for m in modes):
        r = rows[mode]
        print(f"{name:<30}{r['calls']:>12.0f}{r['usd']:>12.4f}{r['wall']:>10.1f}{r['cpu']:>8.1f}{r['best']:>14.3f}")
    led, none, unc = rows["ledger"], rows["none"], rows["uncached"]
    print(f"{'  ledger / no budget':<30}{'':>12}{'':>12}{led['wall'] / none['wall']:>10.2f}{led['cpu'] / none['cpu']:>8.2f}")
    print(f"{'  cache / no cache':<30}{led['calls'] / unc['calls']:>12.3f}{led['usd'] / unc['usd']:>12.3f}")
    if "workers" in rows:
        print(f"{f'  {args.workers} workers / 1 worker':<30}{'':>12}{'':>12}{rows['workers']['wall'] / led['wall']:>10.2f}"
              f"{rows['workers']['cpu'] / led['cpu']:>8.2f}")


if __name__ == "__main__":
    main()
