"""A damaged call cache stops a run with one line naming the file, instead of failing every sample."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from moa_lab.core import Completion, Usage
from moa_lab.models import SqliteCache
from moa_lab.testing import OpenAITestServer


def _damaged_cache(path: Path) -> None:
    cache = SqliteCache(path)
    for i in range(300):
        cache.put(f"k{i}", Completion("x" * 200, Usage(1, 1)))
    cache._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for i in range(4096 * 2, 4096 * 6):  # the pages holding the table's rows
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


def test_a_damaged_cache_is_one_line_naming_it_and_the_run_stops(tmp_path: Path) -> None:
    _damaged_cache(tmp_path / "calls.sqlite")
    data = tmp_path / "q.jsonl"
    data.write_text("".join(f'{{"id": "q{i}", "input": "Question {i}?", "target": "Paris"}}\n' for i in range(40)))
    with OpenAITestServer(responder=lambda body: "Paris") as srv:
        (tmp_path / "exp.yaml").write_text(
            f"""name: damaged
benchmark: {{kind: jsonl, path: q.jsonl}}
topology: {{preset: single, model: srv/m, max_tokens: 8}}
endpoints: {{srv: {{kind: openai, base_url: "{srv.base_url}"}}}}
cache: calls.sqlite
tracking: {{mlflow: false}}
"""
        )
        env = {**os.environ, "MOA_LAB_CACHE_DIR": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "moa_lab.cli", "eval", str(tmp_path / "exp.yaml")],
                              capture_output=True, text=True, env=env, timeout=120)
        served = len(srv.calls)
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert errors[0] == (f"error: {tmp_path / 'calls.sqlite'}: the call cache is damaged (database disk image is "
                         "malformed); move it away (or run with --no-cache) and run again"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr
    assert served <= 8  # it stopped at the first damaged read, not after every sample
