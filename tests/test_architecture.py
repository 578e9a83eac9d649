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
    # CPU time, not wall time: other processes on a busy machine stretch the wall clock, not the
    # work the import does
    code = (
        "import sys, time, json; t = time.process_time(); import moa_lab; dt = time.process_time() - t; "
        f"print(json.dumps({{'s': dt, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    best = None
    for _ in range(3):  # the best of three: a cold disk cache is not the library's cost
        out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        assert out["heavy"] == []
        best = out["s"] if best is None else min(best, out["s"])
    assert best is not None and best < 0.3, f"import moa_lab took {best:.3f} s of CPU"


def test_public_surface_is_short() -> None:
    import moa_lab

    assert 15 <= len(moa_lab.__all__) <= 40
    assert all(hasattr(moa_lab, name) for name in moa_lab.__all__)
