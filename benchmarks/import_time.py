"""How long `import moa_lab` takes in a fresh process, beside importing only its third-party
dependencies (pydantic, yaml, asyncio, sqlite3): wall and CPU seconds, best of N, and the ratio.

    python benchmarks/import_time.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

DEPS = "import pydantic, yaml, asyncio, sqlite3, json, dataclasses"
PROBE = (
    "import time, json, sys; w = time.perf_counter(); c = time.process_time(); {stmt}; "
    "print(json.dumps([time.perf_counter() - w, time.process_time() - c, len(sys.modules)]))"
)


def measure(stmt: str, runs: int) -> tuple[float, float, int]:
    """Best wall and CPU seconds over `runs` fresh processes, and the modules loaded."""
    best = [float("inf"), float("inf"), 0]
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True, text=True, check=True)
        wall, cpu, modules = json.loads(out.stdout)
        best = [min(best[0], wall), min(best[1], cpu), modules]
    return best[0], best[1], int(best[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    deps = measure(DEPS, args.runs)
    ours = measure("import moa_lab", args.runs)
    print(f"{'':<16}{'wall s':>8}{'CPU s':>8}{'modules':>9}")
    print(f"{'dependencies':<16}{deps[0]:>8.3f}{deps[1]:>8.3f}{deps[2]:>9}")
    print(f"{'import moa_lab':<16}{ours[0]:>8.3f}{ours[1]:>8.3f}{ours[2]:>9}")
    print(f"ratio (moa_lab / dependencies): wall {ours[0] / deps[0]:.2f}, CPU {ours[1] / deps[1]:.2f}")


if __name__ == "__main__":
    main()
