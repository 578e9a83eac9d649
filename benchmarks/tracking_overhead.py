"""Tracking overhead: the same evaluation with and without MLflow, side by side.

The evaluation is the quickstart evaluation on the embedded model (its four topologies) on two of
its built-in tasks, 40 items each, with the call cache off so both runs do the same work. MLflow logs
params, batched metrics, the per-query table, the RunLog artifact and traces (spans = agent calls;
the first 25 queries of each run, the default) to a fresh sqlite store.

    python benchmarks/tracking_overhead.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

import yaml

from moa_lab import Sampling
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.tracking import MlflowTracker

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart_eval.yaml"
EXPERIMENT = {
    **yaml.safe_load(QUICKSTART.read_text()),
    "name": "tracking-overhead",
    "benchmark": {"kind": "builtin", "tasks": ["opposites", "addition"], "items": 40},
    "cache": False,
}


def once(folder: Path, tracked: bool) -> float:
    path = folder / ("tracked.yaml" if tracked else "plain.yaml")
    path.write_text(yaml.safe_dump({**EXPERIMENT, "output": str(folder / path.stem)}))
    exp = Experiment.load(path)
    tracker = MlflowTracker(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment="overhead") if tracked else None

    async def main() -> float:
        async with exp.model_set() as models:
            # start the embedded server before timing: both runs then measure only the evaluation
            await models.get("local").call((), Sampling(max_tokens=1), prompt="warm up:")
            start = time.perf_counter()
            await run_experiment(exp, models, tracker=tracker)
            return time.perf_counter() - start

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    plain, tracked = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            plain.append(once(Path(tmp), tracked=False))
            tracked.append(once(Path(tmp), tracked=True))
    p, t = min(plain), min(tracked)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; 2 tasks x 40 items x 4 topologies")
    print(f"{'evaluation':<34}{'wall s':>10}{'ratio':>10}")
    print(f"{'  without tracking':<34}{p:>10.2f}{1.0:>10.3f}")
    print(f"{'  with MLflow (table, traces)':<34}{t:>10.2f}{t / p:>10.3f}")


if __name__ == "__main__":
    main()
