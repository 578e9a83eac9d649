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


def test_a_query_plans_its_judge_calls_on_the_answer_and_each_proposal(tmp_path: Path) -> None:
    """With scored proposals a rubric judge makes one call per proposal and one on the answer; each
    is planned under its own key (`0:judge`, `0:judge/<layer>:<agent>`), bounded with the text at
    its longest, and the real calls stay within their planned bounds (nothing is topped up)."""
    from moa_lab import Budget, Pipeline, preset
    from moa_lab.models import Price, PriceTable
    from moa_lab.scoring import Scoring

    def respond(request: Request) -> str:
        return '{"correctness": 4}' if request.model == "judge" else "word " * 50  # cut at max_tokens

    prices = PriceTable({m: Price(1.0, 2.0) for m in ("a", "b", "agg", "judge")})
    budget = Budget(usd=10.0)
    models = ModelSet(clients={"f": ScriptedClient(responder=respond)}, prices=prices, budget=budget, cache_dir=tmp_path)
    spec = preset("moa", proposers=["f/a", "f/b"], aggregator="f/agg", layers=3, max_tokens=8)
    scorer = build("scorer", "judge-rubric", {"model": "f/judge", "skills": {"correctness": "is it right"}, "max_tokens": 16})
    pipeline = Pipeline(spec, models, scoring=Scoring(scorer, proposals=True))
    sample = Sample("Why?")
    plan = asyncio.run(pipeline.plan(sample))
    record = asyncio.run(pipeline.run_query(sample))
    agents = [p.agent for p in record.layers[0]]
    assert sorted(k for k in plan.calls if k.startswith("0:")) == sorted(
        ["0:judge", *(f"0:judge/1:{a}" for a in agents), *(f"0:judge/2:{p.agent}" for p in record.layers[1])])
    assert record.error is None and record.score == pytest.approx(0.8) and record.layer_scores == [[0.8, 0.8], [0.8, 0.8]]
    assert len(record.judge_calls) == 5
    for call in record.judge_calls:
        [bound] = plan.calls[f"0:{call.agent}"]
        assert call.usage.total_tokens <= bound.tokens
    assert budget.spent_usd == pytest.approx(record.total_cost.paid_usd) and budget.reserved_usd == pytest.approx(0, abs=1e-12)
