"""Search workers on one call cache: how many requests reach the endpoint per distinct call.

A 12-trial study of 2–3 proposers out of 4 models on 12 questions, against a real OpenAI-compatible
server on 127.0.0.1 that answers each request after `--latency` seconds (so workers do miss the same
call at the same moment), run from scratch with one worker and with `--workers N`, each in a fresh
folder with a fresh cache. The server counts identical request bodies: every one answered more than
once was paid more than once.

    python benchmarks/search_shared_calls.py [--workers 2] [--latency 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import yaml

from moa_lab.testing import OpenAITestServer


def study(folder: Path, base_url: str) -> Path:
    data = folder / "q.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "input": f"question {i}", "target": "yes"}) + "\n" for i in range(12)))
    body = {"name": "shared-calls", "output": str(folder / "out"), "benchmark": {"kind": "jsonl", "path": str(data)},
            "scorer": "exact", "tracking": {"mlflow": False}, "concurrency": 4,
            "endpoints": {"srv": {"kind": "openai", "base_url": base_url, "concurrency": 8}},
            "prices": {m: {"input": 1.0, "output": 1.0} for m in "abcd"},
            "search": {"trials": 12, "space": {"pool": ["srv/a", "srv/b", "srv/c", "srv/d"], "proposers": [2, 3],
                                               "aggregators": ["vote"], "max_tokens": [16]}}}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def run(workers: int, latency: float) -> tuple[int, int, float]:
    """(requests served, distinct requests, wall seconds) of the study with `workers` workers."""
    with tempfile.TemporaryDirectory() as tmp, OpenAITestServer(latency=latency, responder=lambda body: "yes") as srv:
        exp = study(Path(tmp), srv.base_url)
        env = {**os.environ, "MOA_LAB_CACHE_DIR": str(Path(tmp) / "cache")}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "search", str(exp), "--workers", str(workers)],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the study with {workers} workers failed:\n{done.stderr[-2000:]}")
        served = Counter(json.dumps(c.body, sort_keys=True) for c in srv.calls)
        return len(srv.calls), len(served), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the server takes per request")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{date.today()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<12}{'requests':>9}{'distinct':>9}{'per call':>9}{'wall s':>8}")
    rows = {n: run(n, args.latency) for n in (1, args.workers)}
    for n, (requests, distinct, wall) in rows.items():
        print(f"{f'{n} worker' + 's' * (n > 1):<12}{requests:>9}{distinct:>9}{requests / distinct:>9.2f}{wall:>8.1f}")
    (r1, d1, _), (rn, dn, _) = rows[1], rows[args.workers]
    print(f"requests per distinct call, {args.workers} workers / 1 worker: {(rn / dn) / (r1 / d1):.2f}")


if __name__ == "__main__":
    main()
