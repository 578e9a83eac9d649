"""End to end on the embedded model: `moa-lab serve experiments/quickstart.yaml` answers the `openai`
client (plain and streamed) with its Self-MoA, and `experiments/serve_mixture.yaml` runs a second MoA
that uses the served endpoint as one of its proposers (a mixture of mixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from moa_lab.tracking import read_runlog
from test_serve_cli import free_port, wait_ready  # the same helpers as the command-line test

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_served_to_openai_and_as_a_proposer(tmp_path: Path, cache_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "MOA_LAB_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, "-m", "moa_lab.cli", "serve", str(ROOT / "experiments" / "quickstart.yaml"), "--port", str(port),
           "--output", str(tmp_path / "runs")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(base_url, proc)
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
        assert [m.id for m in client.models.list()] == ["quickstart"]
        reply = client.chat.completions.create(model="quickstart", messages=[{"role": "user", "content": "What is the capital of France?"}])
        stream = client.chat.completions.create(model="quickstart", stream=True,
                                                messages=[{"role": "user", "content": "What is the plural of dog?"}])
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        mixture = yaml.safe_load((ROOT / "experiments" / "serve_mixture.yaml").read_text())
        mixture["endpoints"]["served"]["base_url"] = base_url
        mixture["output"] = str(tmp_path / "runs")
        path = tmp_path / "serve_mixture.yaml"
        path.write_text(yaml.safe_dump(mixture))
        run = subprocess.run([sys.executable, "-m", "moa_lab.cli", "run", str(path), "--no-mlflow"], env=env,
                             capture_output=True, text=True, timeout=1800)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=120)
    served = read_runlog(next((tmp_path / "runs" / "quickstart").glob("2*")) / "served.jsonl").records
    first = served[0]
    assert first.answer is not None and reply.choices[0].message.content == first.answer.text != ""
    assert len(first.calls) == 6 and all(c.model == "local/gemma-3-270m" for c in first.calls)
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (sum(c.usage.input_tokens for c in first.calls),
                                                              sum(c.usage.output_tokens for c in first.calls))
    assert streamed == served[1].answer.text != ""

    outer = read_runlog(next((tmp_path / "runs" / "serve-mixture").glob("2*")) / "topology.jsonl").records
    assert len(outer) == len(mixture["queries"]) and all(r.answer is not None for r in outer)
    via_server = [c for r in outer for c in r.calls if c.model == "served/quickstart"]
    assert len(via_server) == len(outer) and all(c.error is None for c in via_server)
    assert len(served) == 2 + len(outer)  # every outer query reached the served Self-MoA
    assert {c.output for c in via_server} <= {r.answer.text for r in served[2:] if r.answer}
