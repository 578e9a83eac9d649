"""Judges through the Model wrapper (scripted client): both orders, parsing, summaries."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from moa_lab import Answer, ModelSet, QueryRecord, Sample
from moa_lab.core import Request
from moa_lab.models import MemoryCache
from moa_lab.registry import build
from moa_lab.scoring import ScoringContext
from moa_lab.testing import ScriptedClient


def test_pairwise_judge_asks_both_orders_and_maps_them_back(tmp_path: Path) -> None:
    seen: list[str] = []

    def judge(request: Request) -> str:
        user = request.messages[-1].content
        seen.append(user)
        # prefer whichever output holds the word LONG: it is output_2 (M) when it comes second
        return "M" if user.rfind("LONG") > user.rfind("short reference") else "m"

    models = ModelSet(clients={"j": ScriptedClient(responder=judge)}, cache=MemoryCache(), cache_dir=tmp_path)
    scorer = build("scorer", "judge-pairwise", {"model": "j/judge"})
    sample = Sample("Explain.", metadata={"reference": "short reference"})
    ctx = ScoringContext(models)
    score = asyncio.run(scorer.score(sample, "a LONG answer", ctx))
    assert len(seen) == 2 and len(ctx.calls) == 2
    assert score.value == pytest.approx(1.0)  # preferred in both orders
    worse = asyncio.run(scorer.score(Sample("Explain.", metadata={"reference": "LONG reference"}), "short reference", ScoringContext(models)))
    assert worse.value == pytest.approx(0.0)


def test_pairwise_summary_reports_win_rates() -> None:
    scorer = build("scorer", "judge-pairwise", {"model": "j/judge"})
    sample = Sample("q", metadata={"reference": "y" * 100})
    records = [QueryRecord(sample=sample, answer=Answer("x" * 100, "agg"), score=s) for s in (1.0, 0.0, 1.0, 1.0)]
    summary = scorer.summary(records)
    assert summary["win_rate"] == pytest.approx(75.0)
    # equal lengths: the length term is 0, so the LC equals the raw win rate (no difficulty metadata)
    assert summary["lc_win_rate_approx"] == pytest.approx(75.0, abs=1e-6)
    with_difficulty = [QueryRecord(sample=Sample("q", metadata={"reference": "y" * 100, "instruction_difficulty": d}),
                                   answer=Answer("x" * 100, "agg"), score=s) for s, d in ((1.0, 0.0), (0.0, 1.0), (1.0, -1.0), (1.0, 0.5))]
    assert 0 < scorer.summary(with_difficulty)["lc_win_rate_approx"] < 100


def test_rubric_judge_parses_json_and_rejects_partial(tmp_path: Path) -> None:
    scorer = build("scorer", "judge-rubric", {"model": "j/j", "skills": {"correctness": "is it right", "conciseness": "is it short"}})
    assert scorer.parse('Sure! {"correctness": 4, "conciseness": 2}') == {"correctness": 4.0, "conciseness": 2.0}
    assert scorer.parse('{"correctness": 9}') == {}
    models = ModelSet(clients={"j": ScriptedClient(responder=lambda r: '{"correctness": 5, "conciseness": 3}')}, cache_dir=tmp_path)
    score = asyncio.run(scorer.score(Sample("q"), "a", ScoringContext(models)))
    assert score.value == pytest.approx(0.8)
    partial = ModelSet(clients={"j": ScriptedClient(responder=lambda r: '{"correctness": 5}')}, cache_dir=tmp_path)
    assert math.isnan(asyncio.run(scorer.score(Sample("q"), "a", ScoringContext(partial))).value)


def test_single_judge_uses_fastchat_prompts(data_dir: Path, tmp_path: Path) -> None:
    prompts = data_dir / "mt_bench" / "judge_prompts.jsonl"
    models = ModelSet(clients={"j": ScriptedClient(responder=lambda r: "Fine answer. Rating: [[7]]")}, cache_dir=tmp_path)
    scorer = build("scorer", "judge-single", {"model": "j/gpt-4", "prompts": str(prompts)})
    ctx = ScoringContext(models)
    score = asyncio.run(scorer.score(Sample("Write a haiku.", metadata={"category": "writing"}), "Leaves fall", ctx))
    assert score.value == 7.0
    assert "[Question]\nWrite a haiku." in ctx.calls[0].messages[1].content
