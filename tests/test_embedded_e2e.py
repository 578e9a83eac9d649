"""End to end on the embedded model: the README's `moa-lab ask`, twice (the second from the cache)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _ask(cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOA_LAB_CACHE_DIR": str(cache), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "moa_lab.cli", "ask", "What is the capital of France?", "--topology", "self-moa", *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )


def test_ask_self_moa_on_the_embedded_model_then_from_cache(cache_dir: Path) -> None:
    first = _ask(cache_dir)
    assert first.returncode == 0, first.stderr[-2000:] + first.stdout[-2000:]
    assert "Layer 1" in first.stdout and "Answer" in first.stdout
    calls = re.search(r"calls: (\d+) \((\d+) from cache, (\d+) new model calls?\)", first.stdout)
    assert calls is not None, first.stdout
    assert int(calls.group(1)) == 6 and int(calls.group(3)) == 6
    assert "paris" in first.stdout.lower()

    second = _ask(cache_dir)
    assert second.returncode == 0, second.stderr[-2000:]
    again = re.search(r"calls: (\d+) \((\d+) from cache, (\d+) new model calls?\)", second.stdout)
    assert again is not None and again.group(1) == "6" and again.group(2) == "6" and again.group(3) == "0"
    logs = list((cache_dir / "logs").glob("*")) if (cache_dir / "logs").exists() else []
    assert len(logs) <= 1, "the second, fully cached ask must not start the server"
