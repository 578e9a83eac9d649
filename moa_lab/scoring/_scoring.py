"""Scoring a query's record inside the query: its answer (and each layer's proposals) by a scorer,
the judge's calls drawn from the query's admission, and the worst case of those calls planned
before the query starts, so a query that starts is also scored.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Sequence
from dataclasses import replace

from moa_lab.core import CallRecord, Cost, Message, Proposal, Request, Sample, Score, StoreDamaged, Usage
from moa_lab.models import Admission, ModelSet, Reservation, gather_calls
from moa_lab.scoring._scorer import Scorer, ScoringContext
from moa_lab.tracking import QueryRecord

ANSWER = "\x00answer\x00"
"""Stands for the answer (or a proposal) while a judge's calls are planned: each time it appears in a
judge's prompt, the prompt's bound grows by the answer's worst-case length."""


def proposal_agent(layer: int, agent: str) -> str:
    """What the judge's calls on a proposal are traced and planned as."""
    return f"judge/{layer}:{agent}"


class Scoring:
    """How every query's record is scored: `scorer` on the answer and, with `proposals` (default:
    when the scorer calls no model), on each layer's proposals too."""

    def __init__(self, scorer: Scorer, *, proposals: bool | None = None) -> None:
        self.scorer = scorer
        self.proposals = (not scorer.calls_models) if proposals is None else proposals

    def models(self) -> list[str]:
        """The models the scorer calls (a judge names its own in `model`), for the price check."""
        model = getattr(self.scorer, "model", None) if self.scorer.calls_models else None
        return [model] if isinstance(model, str) else []

    async def score(self, record: QueryRecord, models: ModelSet, budget: Admission | None = None) -> QueryRecord:
        """The record with its score, each layer's proposals' scores and the judge's calls (drawn
        from `budget`, the query's admission). A scorer or judge that raises fails this sample (its
        `error` and traceback are kept), never the run."""
        ctx = ScoringContext(models, budget=budget)
        update: dict[str, object] = {}
        try:
            if record.answer is None:
                update |= {"score": 0.0, "score_explanation": "query failed"}
            else:
                score = await self.scorer.score(record.sample, record.answer.text, ctx)
                update |= {"score": _value(score), "score_explanation": score.explanation}
            if self.proposals and record.layers:
                layers = [await self._layer_scores(i, layer, record.sample, ctx) for i, layer in enumerate(record.layers, 1)]
                update |= {"proposal_scores": layers[0], "layer_scores": layers}
        except StoreDamaged:
            raise
        except Exception as exc:  # noqa: BLE001 - a scorer's bug on one sample must not stop the run
            failure = f"scorer failed: {type(exc).__name__}: {exc}"
            update = {"score": None, "score_explanation": failure, "error": record.error or failure,
                      "traceback": "\n".join(t for t in (record.traceback, traceback.format_exc()) if t)}
        return record.model_copy(update=update | {"judge_calls": ctx.calls})

    async def _layer_scores(self, layer: int, proposals: list[Proposal], sample: Sample, ctx: ScoringContext) -> list[float | None]:
        """Each proposal's score in layer order; a failed proposal scores 0."""
        def labelled(p: Proposal) -> ScoringContext:  # a judge's calls are traced under the proposal they score
            return replace(ctx, agent=proposal_agent(layer, p.agent)) if self.scorer.calls_models else ctx

        scores = iter(await gather_calls((self.scorer.score(sample, p.text, labelled(p)) for p in proposals if p.ok)))
        return [_value(next(scores)) if p.ok else 0.0 for p in proposals]

    async def plan(self, sample: Sample, models: ModelSet, answer_tokens: int,
                   proposal_tokens: Sequence[Sequence[tuple[str, int]]]) -> list[tuple[str, Reservation]]:
        """The worst case of every judge call scoring `sample` makes, keyed as `Model.call` draws
        them (`"0:<agent>"`), none sent: each judge prompt bounded with the answer at
        `answer_tokens` (a proposal of layer i by agent a at its `proposal_tokens[i-1]` entry),
        max_tokens out. A scorer that calls no model plans nothing."""
        if not self.scorer.calls_models:
            return []
        bounds: list[tuple[str, Reservation]] = []

        async def judge(agent: str, tokens: int) -> None:
            def probe(ref: str, request: Request) -> CallRecord:
                shown = tuple(Message(m.role, m.content.replace(ANSWER, "")) for m in request.messages)
                times = sum(m.content.count(ANSWER) for m in request.messages)
                bound = models.get(ref).worst_case(replace(request, messages=shown), extra_input_tokens=times * tokens)
                bounds.append((f"0:{agent}", bound))
                return CallRecord(agent, ref, request.messages, "", Usage(), Cost(), 0.0, False)

            try:
                await self.scorer.score(sample, ANSWER, ScoringContext(models, agent=agent, probe=probe))
            except Exception:  # noqa: BLE001, S110 - a judge confused by an empty verdict made its calls already
                pass

        await judge("judge", answer_tokens)
        if self.proposals:
            for layer, agents in enumerate(proposal_tokens, 1):
                for agent, tokens in agents:
                    await judge(proposal_agent(layer, agent), tokens)
        return bounds


def _value(score: Score) -> float | None:
    return None if math.isnan(score.value) else score.value  # NaN: a judge could not decide
