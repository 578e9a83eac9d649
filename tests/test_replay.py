from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from moa_lab import ConfigError, ModelSet, Pipeline, Sample, preset
from moa_lab.core import Message, ReplayMissing, Request, Sampling
from moa_lab.models import EndpointConfig, estimate_tokens
from moa_lab.models.providers.replay import ReplayClient
from moa_lab.testing._scripted import ScriptedClient


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_jsonl_by_instruction_and_by_id(tmp_path: Path) -> None:
    by_text = _jsonl(tmp_path / "a.jsonl", [{"instruction": "Say hi", "model": "m1", "output": "hi there"}])
    questions = _jsonl(tmp_path / "q.jsonl", [{"id": "q1", "question": "Add 2 and 2"}])
    by_id = _jsonl(tmp_path / "b.jsonl", [{"id": "q1", "model": "m2", "output": "4"}])
    client = ReplayClient([by_text, by_id], questions=questions)
    got = await client.complete(Request("m1", (Message("user", "Say hi"),)))
    assert got.text == "hi there" and got.usage_estimated
    assert got.usage.output_tokens == estimate_tokens("hi there") == 2
    assert (await client.complete(Request("m2", (Message("user", "Add 2 and 2"),)))).text == "4"


async def test_missing_recording_is_an_error_not_an_empty_answer(tmp_path: Path) -> None:
    client = ReplayClient([_jsonl(tmp_path / "a.jsonl", [{"instruction": "Say hi", "model": "m1", "output": "hi"}])])
    with pytest.raises(ReplayMissing, match=r"m1: no recording in .*a.jsonl of this request \(chat of 1 message, .*ending 'Say bye'\)"):
        await client.complete(Request("m1", (Message("user", "Say bye"),)))
    with pytest.raises(ReplayMissing, match="did you mean m1"):
        await client.complete(Request("m11", (Message("user", "Say hi"),)))
    with pytest.raises(ReplayMissing, match="plain instructions only: export the run"):
        await client.complete(Request("m1", (Message("system", "refs"), Message("user", "Say hi"))))


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        ReplayClient([tmp_path / "nope.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "model": "m", "output": "y"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: not valid JSON"):
        ReplayClient([bad])


def test_alpaca_eval_moa_lite_with_replayed_proposers(data_dir: Path, tmp_path: Path) -> None:
    """Layer 1 comes from the real recorded outputs, charged at list price; the aggregator sees all five."""
    names = ["Qwen1.5-110B-Chat", "Qwen1.5-72B-Chat", "Meta-Llama-3-70B-Instruct", "Mixtral-8x22B-Instruct-v0.1", "dbrx-instruct"]
    files = [str(data_dir / "alpaca_eval" / "model_outputs" / f"{n}.json.gz") for n in names]
    rows = {n: json.load(gzip.open(f)) for n, f in zip(names, files)}
    judge = ScriptedClient(responder=lambda r: "synthesized")
    models = ModelSet({"replay": EndpointConfig(kind="replay", paths=tuple(files))}, clients={"fake": judge}, cache_dir=tmp_path)
    spec = preset("moa-lite", proposers=[f"replay/{n}" for n in names], aggregator="fake/agg")
    instruction = rows[names[0]][3]["instruction"]
    result = asyncio.run(Pipeline(spec, models).run_query(Sample(instruction)))
    assert result.error is None
    assert [p.text for p in result.layers[0]] == [rows[n][3]["output"].strip() for n in names]
    system = judge.requests[0].messages[0].content
    assert all(f"{i}. {rows[n][3]['output'].strip()[:50]}" in system for i, n in enumerate(names, 1))
    qwen110 = next(c for c in result.calls if c.model == "replay/Qwen1.5-110B-Chat")
    assert qwen110.cost.paid_usd == pytest.approx(qwen110.usage.total_tokens * 1.80 / 1e6)
    assert result.cost.paid_usd == pytest.approx(sum(c.cost.paid_usd for c in result.calls))
