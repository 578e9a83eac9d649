"""The layering contract and the import budget of `import moa_lab`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["mlflow", "optuna", "torch", "sentence_transformers", "sklearn", "scipy", "openai", "xllamacpp"]


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency: pip install -e '.[test]'"
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_import_is_fast_and_light() -> None:
    """No heavy module loads, and moa-lab's own import costs under 2.5 times the CPU of the
    libraries it cannot do without. CPU time beside a baseline measured in the same run: a busy
    machine stretches both alike (the absolute time is measured by benchmarks/import_time.py)."""
    code = (
        "import sys, time, json; t = time.process_time(); import pydantic, yaml, asyncio, sqlite3; "
        "deps = time.process_time() - t; t = time.process_time(); import moa_lab; ours = time.process_time() - t; "
        f"print(json.dumps({{'deps': deps, 'ours': ours, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    ratios = []
    for _ in range(5):  # the best of five: a cold disk cache is not the library's cost
        out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        assert out["heavy"] == []
        ratios.append(out["ours"] / out["deps"])
    assert min(ratios) < 2.5, f"import moa_lab costs {min(ratios):.2f}x the CPU of importing its dependencies"


def test_public_surface_is_short() -> None:
    import moa_lab

    assert 15 <= len(moa_lab.__all__) <= 40
    assert all(hasattr(moa_lab, name) for name in moa_lab.__all__)
