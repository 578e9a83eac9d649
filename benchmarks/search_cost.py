"""Search cost: the same topology study with the shared call cache and without it, side by side.

The study is `experiments/search_gsm8k_replay.yaml` (60 trials of vote subsets over the 18 recorded
GSM8K models, on the study's search split of the 1,319 questions, list prices), run twice from scratch with the same seed: once with a
fresh call cache shared by all trials, once with no cache. Replayed calls are charged at list price,
so "paid" is what the study would have cost against the real endpoints.

    python benchmarks/search_cost.py [--trials 60]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import yaml

from moa_lab.evaluation import Experiment, groups
from moa_lab.models import Budget, SqliteCache
from moa_lab.search import run_study, search_config, search_split
from moa_lab.tracking import read_runlog

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "search_gsm8k_replay.yaml"


def once(folder: Path, cached: bool, trials: int) -> tuple[int, float, float, float]:
    body = yaml.safe_load(STUDY.read_text())
    body["output"] = str(folder / ("cached" if cached else "uncached"))
    body["search"]["budget_usd"] = None  # measure the whole study's spend, uncapped
    path = STUDY.parent / f".search-cost-{'c' if cached else 'u'}.yaml"  # beside the original: same relative paths
    path.write_text(yaml.safe_dump(body))
    try:
        exp = Experiment.load(path)
    finally:
        path.unlink()
    models = exp.model_set(use_cache=False, budget=Budget())  # no cap, only the meter
    models.cache = SqliteCache(folder / "calls.sqlite") if cached else None
    calls = {"paid": 0}

    async def main() -> float:
        async with models:
            start = time.perf_counter()
            study = await run_study(exp, models, trials=trials)
            elapsed = time.perf_counter() - start
        best = max(t.user_attrs["quality"] for t in study.trials if "quality" in t.user_attrs)
        calls["best"] = best  # type: ignore[assignment]
        return elapsed

    elapsed = asyncio.run(main())
    paid_calls = 0
    for log in (folder / ("cached" if cached else "uncached")).rglob("*.jsonl"):
        for record in read_runlog(log).records:
            paid_calls += sum(1 for c in record.calls if not c.cached and not c.error)
    return paid_calls, models.budget.spent_usd, elapsed, float(calls["best"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c_calls, c_usd, c_s, c_best = once(Path(tmp), True, args.trials)
        u_calls, u_usd, u_s, u_best = once(Path(tmp), False, args.trials)
    probe = Experiment.load(STUDY)
    questions = sum(len(g.samples) for g in groups(search_split(probe, search_config(probe))))
    print(f"{args.trials}-trial study over 18 replayed GSM8K models ({questions:,} questions of the search split), same seed")
    print(f"{'':<22}{'calls paid':>12}{'$ paid':>12}{'wall s':>10}{'best quality':>14}")
    print(f"{'  with shared cache':<22}{c_calls:>12}{c_usd:>12.4f}{c_s:>10.1f}{c_best:>14.3f}")
    print(f"{'  without cache':<22}{u_calls:>12}{u_usd:>12.4f}{u_s:>10.1f}{u_best:>14.3f}")
    print(f"{'  ratio':<22}{c_calls / u_calls:>12.3f}{c_usd / u_usd:>12.3f}")


if __name__ == "__main__":
    main()
