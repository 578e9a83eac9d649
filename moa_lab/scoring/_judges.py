"""LLM judges as scorers. They call models through the same `Model` wrapper as agents, so their
calls are cached, budgeted and traced (`ScoringContext.calls`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from moa_lab.core import ConfigError, Message, Sample, Sampling, Score
from moa_lab.scoring._scorer import ScoringContext, scorer
from moa_lab.tracking import QueryRecord
from moa_lab.scoring._verdicts import (
    flip_preference,
    load_judge_prompts,
    parse_pairwise,
    parse_rating,
    render_single,
    single_prompt_name,
)
from moa_lab.scoring._winrate import length_controlled_win_rate, standard_error, win_rate


class PairwiseJudge:
    """AlpacaEval-style: the answer against the sample's reference output, judged in both orders
    (to cancel position bias); the score is the mean preference for the answer minus 1, in [0, 1].
    Its run summary adds the win rate and the length-controlled win rate (see `_winrate`)."""

    calls_models = True

    def __init__(self, model: str, reference_field: str, both_orders: bool, max_tokens: int) -> None:
        self.name = f"judge-pairwise({model})"
        self.model = model
        self.reference_field = reference_field
        self.both_orders = both_orders
        self.sampling = Sampling(temperature=0.0, max_tokens=max_tokens)

    async def _verdict(self, instruction: str, first: str, second: str, ctx: ScoringContext) -> float | None:
        from moa_lab.scoring._verdicts import pairwise_prompt

        system, user = pairwise_prompt(instruction, first, second)
        record = await ctx.call(self.model, (Message("system", system), Message("user", user)), self.sampling)
        return None if record.error else parse_pairwise(record.output)

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        reference = sample.metadata.get(self.reference_field)
        if not isinstance(reference, str):
            raise ConfigError(f"judge-pairwise: sample {sample.id!r} has no {self.reference_field!r} in its metadata")
        if answer.strip() == reference.strip():
            return Score(0.5, "identical to the reference")
        prefs = [await self._verdict(sample.input, reference, answer, ctx)]  # answer is output_2 (M)
        if self.both_orders:
            swapped = await self._verdict(sample.input, answer, reference, ctx)
            prefs.append(None if swapped is None else flip_preference(swapped))
        valid = [p for p in prefs if p is not None]
        if not valid:
            return Score(math.nan, "no verdict could be parsed")
        pref = sum(valid) / len(valid)
        return Score(pref - 1.0, f"preferences {prefs}")

    def summary(self, records: Sequence[QueryRecord]) -> dict[str, float]:
        """Win rate, its standard error and ``lc_win_rate_approx`` over the answers the judge could score.

        The LC value is the same GLM as ``moa-lab analyze winrate`` (synthesised gamed baselines, see
        ``scoring/_glm.py``), with each sample's ``instruction_difficulty`` metadata when every scored
        sample has one and without the difficulty term otherwise; it is an approximation of AlpacaEval
        2.0's LC either way (and this judge is not the leaderboard's), hence the ``_approx`` name."""
        scored = [(r.answer.text, r.score, r.sample) for r in records if r.answer is not None and r.score is not None]
        if not scored:
            return {}
        prefs = [1.0 + score for _, score, _ in scored]
        model_len = [len(text) for text, _, _ in scored]
        ref_len = [len(str(sample.metadata.get(self.reference_field, ""))) for _, _, sample in scored]
        known = [sample.metadata.get("instruction_difficulty") for _, _, sample in scored]
        difficulty = [float(d) for d in known] if all(isinstance(d, (int, float)) for d in known) else None
        return {
            "win_rate": win_rate(prefs),
            "win_rate_stderr": standard_error(prefs),
            "lc_win_rate_approx": length_controlled_win_rate(prefs, model_len, ref_len, instruction_difficulty=difficulty),
        }


@scorer("judge-pairwise")
def judge_pairwise(model: str, reference: str = "reference", both_orders: bool = True, max_tokens: int = 4) -> PairwiseJudge:
    """LLM judge comparing the answer with a reference output (AlpacaEval 2.0 style)."""
    return PairwiseJudge(model, reference, both_orders, max_tokens)


class SingleJudge:
    """MT-Bench single-answer grading 1-10 with FastChat's judge prompts (value is the rating)."""

    calls_models = True

    def __init__(self, model: str, prompts: str, max_tokens: int) -> None:
        path = Path(prompts)
        if not path.is_file():
            raise ConfigError(f"judge-single: judge prompts file not found: {path} (FastChat's judge_prompts.jsonl)")
        self.name = f"judge-single({model})"
        self.model = model
        self.prompts = load_judge_prompts(path)
        self.sampling = Sampling(temperature=0.0, max_tokens=max_tokens)

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        meta = sample.metadata
        turn = int(meta.get("turn", 1))
        prompt = self.prompts[single_prompt_name(str(meta.get("category", "")), multi_turn=turn == 2)]
        refs = meta.get("reference") or [None, None]
        if turn == 2:
            system, user = render_single(prompt, meta["turns"][0], meta["answer_1"], question_2=meta["turns"][1],
                                         answer_2=answer, ref_answer=refs[0], ref_answer_2=refs[1] if len(refs) > 1 else None)
        else:
            system, user = render_single(prompt, sample.input, answer, ref_answer=refs[0])
        record = await ctx.call(self.model, (Message("system", system), Message("user", user)), self.sampling)
        rating = None if record.error else parse_rating(record.output)
        return Score(math.nan if rating is None else rating, record.error or record.output[-200:])


@scorer("judge-single")
def judge_single(model: str, prompts: str, max_tokens: int = 1024) -> SingleJudge:
    """LLM judge grading one answer 1-10 (MT-Bench, FastChat's prompts file)."""
    return SingleJudge(model, prompts, max_tokens)


_JSON = re.compile(r"\{.*\}", re.S)


class RubricJudge:
    """FLASK-style skill scores: the judge rates each configured skill 1-5 against its rubric and
    answers in JSON; the score is the mean rating / 5 and the explanation keeps every skill's rating
    as JSON, so the run summary reports each skill (`summary`)."""

    calls_models = True

    def __init__(self, model: str, skills: Mapping[str, str], max_tokens: int) -> None:
        if not skills:
            raise ConfigError("judge-rubric needs skills: {name: rubric}")
        self.name = f"judge-rubric({model})"
        self.model = model
        self.skills = dict(skills)
        self.sampling = Sampling(temperature=0.0, max_tokens=max_tokens)

    def prompt(self, question: str, answer: str) -> tuple[Message, ...]:
        rubric = "\n".join(f"- {name}: {text}" for name, text in self.skills.items())
        keys = ", ".join(f'"{name}": <1-5>' for name in self.skills)
        system = "You are a strict evaluator. Rate the response on each skill from 1 (poor) to 5 (excellent)."
        user = f"Skills and rubrics:\n{rubric}\n\nQuestion:\n{question}\n\nResponse:\n{answer}\n\nAnswer with JSON only: {{{keys}}}"
        return (Message("system", system), Message("user", user))

    def parse(self, verdict: str) -> dict[str, float]:
        """Ratings by skill from the judge's JSON; skills it did not rate are absent."""
        match = _JSON.search(verdict)
        if not match:
            return {}
        try:
            data = json.loads(match.group())
        except json.JSONDecodeError:
            return {}
        return {k: float(v) for k, v in data.items() if k in self.skills and isinstance(v, (int, float)) and 1 <= v <= 5}

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        record = await ctx.call(self.model, self.prompt(sample.input, answer), self.sampling)
        ratings = {} if record.error else self.parse(record.output)
        if len(ratings) != len(self.skills):
            return Score(math.nan, f"unparsed verdict: {record.error or record.output[:200]}")
        return Score(sum(ratings.values()) / len(ratings) / 5, json.dumps(ratings))

    def summary(self, records: Sequence[QueryRecord]) -> dict[str, float]:
        """Per skill, the mean 1-5 rating and its standard error over the samples the judge rated."""
        from moa_lab.scoring._metrics import mean_stderr

        ratings: dict[str, list[float]] = {k: [] for k in self.skills}
        for r in records:
            if r.score is None:
                continue
            try:
                found = json.loads(r.score_explanation)
            except json.JSONDecodeError:
                continue
            for k, v in found.items() if isinstance(found, dict) else ():
                if k in ratings:
                    ratings[k].append(float(v))
        out: dict[str, float] = {}
        for k, values in ratings.items():
            if values:
                out[f"skill/{k}"], out[f"skill/{k}_stderr"] = mean_stderr(values)
        return out


@scorer("judge-rubric")
def judge_rubric(model: str, skills: dict[str, str], max_tokens: int = 256) -> RubricJudge:
    """LLM judge scoring FLASK-style skills 1-5 against rubrics given in config."""
    return RubricJudge(model, skills, max_tokens)


class Unscored:
    """Records answers without scoring them (length, cost and latency are still reported)."""

    name = "none"
    calls_models = False

    async def score(self, sample: Sample, answer: str, ctx: ScoringContext) -> Score:
        return Score(math.nan, "not scored")


@scorer("none")
def none() -> Unscored:
    """No scoring: run for length, cost and latency only."""
    return Unscored()
