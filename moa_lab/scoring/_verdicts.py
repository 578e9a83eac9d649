"""Judge prompts and verdict parsing: MT-Bench single-answer grading (FastChat's formats) and
AlpacaEval-style pairwise comparison. Pure: no model calls, no I/O except reading a prompt file.

MT-Bench (Zheng et al. 2023, FastChat ``fastchat/llm_judge``): prompts come from FastChat's
``judge_prompts.jsonl`` and are rendered exactly as ``run_judge_single`` does (``str.format`` of
``prompt_template``; the system message is the prompt's ``system_prompt``); ratings are read with
FastChat's two regular expressions. Checked against the 320 recorded GPT-4 judgments in
``../shared/data/mt_bench/gpt-4_single_judgments.jsonl``: every stored ``user_prompt`` is reproduced
exactly and every stored ``score`` is parsed back.

Pairwise (AlpacaEval 2.0): the judge sees an instruction and two outputs labelled ``m`` (output_1, the
reference) and ``M`` (output_2, the model) and answers with one identifier; the preference is
1 (output_1 better) or 2 (output_2 better), or, from token log-probabilities, ``2 - P(m)`` as in
AlpacaEval's ``weighted_alpaca_eval_gpt4_turbo`` judge.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

#: MT-Bench categories judged against a reference answer (FastChat's ``NEED_REF_CATS``).
NEED_REF_CATS: frozenset[str] = frozenset({"math", "reasoning", "coding"})

# FastChat's patterns (fastchat/llm_judge/common.py): "[[8]]" first, then the fallback "[8]".
_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

_REQUIRED_KEYS = ("name", "type", "system_prompt", "prompt_template", "output_format")


@dataclass(frozen=True)
class JudgePrompt:
    """One judge prompt of FastChat's ``judge_prompts.jsonl``.

    ``type`` is ``"single"`` (grade one answer 1-10) or ``"pairwise"`` (compare two);
    ``prompt_template`` is a ``str.format`` template whose fields are listed by :attr:`fields`;
    ``output_format`` is the verdict format the prompt asks for (``"[[rating]]"``, ``"[[A]]"``, ...).
    Keys of the file that are not fields here are kept in ``extra``.
    """

    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str
    description: str = ""
    category: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fields(self) -> frozenset[str]:
        """The placeholder names of ``prompt_template`` (e.g. ``question``, ``answer``, ``ref_answer_1``)."""
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.prompt_template) if name)

    @property
    def multi_turn(self) -> bool:
        """Whether the template shows a two-turn conversation (it has ``question_2``)."""
        return "question_2" in self.fields

    @property
    def ref_based(self) -> bool:
        """Whether the template embeds a reference answer (``ref_answer_1``)."""
        return "ref_answer_1" in self.fields


def load_judge_prompts(path: str | PathLike[str]) -> dict[str, JudgePrompt]:
    """Read FastChat's ``judge_prompts.jsonl``: one JSON object a line, keyed by its ``name``.

    Raises ``ValueError`` naming the line when a line lacks one of name, type, system_prompt,
    prompt_template or output_format, or when a name repeats.
    """
    prompts: dict[str, JudgePrompt] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [key for key in _REQUIRED_KEYS if key not in record]
            if missing:
                raise ValueError(f"{path}:{lineno}: judge prompt lacks {', '.join(missing)}")
            known = {key: record[key] for key in (*_REQUIRED_KEYS, "description", "category") if key in record}
            extra = {key: value for key, value in record.items() if key not in known}
            prompt = JudgePrompt(**known, extra=extra)
            if prompt.name in prompts:
                raise ValueError(f"{path}:{lineno}: judge prompt {prompt.name!r} appears twice")
            prompts[prompt.name] = prompt
    return prompts


def single_prompt_name(category: str, *, multi_turn: bool = False) -> str:
    """The FastChat prompt MT-Bench uses for a question category: ``single-math-v1`` for math,
    reasoning and coding (graded against a reference answer), ``single-v1`` otherwise, with
    ``-multi-turn`` for grading the second turn."""
    base = "single-math-v1" if category in NEED_REF_CATS else "single-v1"
    return base + "-multi-turn" if multi_turn else base


def render_single(
    prompt: JudgePrompt,
    question: str,
    answer: str,
    *,
    question_2: str | None = None,
    answer_2: str | None = None,
    ref_answer: str | None = None,
    ref_answer_2: str | None = None,
) -> tuple[str, str]:
    """The (system, user) messages of a single-answer grading, exactly as FastChat builds them.

    Single-turn templates (``single-v1``, ``single-math-v1``) receive ``question`` and ``answer`` (the
    first turn); multi-turn templates (``*-multi-turn``, which grade the second answer in the
    context of the whole conversation) receive ``question_1``/``answer_1`` from ``question``/``answer``
    and ``question_2``/``answer_2``. Reference-based templates receive ``ref_answer_1`` from
    ``ref_answer`` and ``ref_answer_2`` from ``ref_answer_2``. Values are inserted verbatim (braces in
    an answer are safe: only the template is parsed). The system message is the prompt's
    ``system_prompt`` (``"You are a helpful assistant."`` for the single-turn prompts, whose
    instructions live in the template).

    Raises:
        ValueError: the prompt is not a single-answer prompt, or a value the template needs is None.
    """
    if prompt.type != "single":
        raise ValueError(f"judge prompt {prompt.name!r} is {prompt.type!r}, not a single-answer prompt")
    values: dict[str, str | None] = {"ref_answer_1": ref_answer, "ref_answer_2": ref_answer_2}
    if prompt.multi_turn:
        values.update(question_1=question, answer_1=answer, question_2=question_2, answer_2=answer_2)
    else:
        values.update(question=question, answer=answer)
    missing = sorted(name for name in prompt.fields if values.get(name) is None)
    if missing:
        hint = {"ref_answer_1": "ref_answer", "question_1": "question", "answer_1": "answer"}
        names = ", ".join(hint.get(name, name) for name in missing)
        raise ValueError(f"judge prompt {prompt.name!r} needs {names}")
    user = prompt.prompt_template.format(**{key: value for key, value in values.items() if value is not None})
    return prompt.system_prompt, user


def parse_rating(judgment: str) -> float | None:
    """The rating in a single-answer judgment, or None when it states none.

    FastChat's rule: the first ``[[x]]`` (``x`` an integer or decimal, e.g. ``[[8]]``, ``[[8.5]]``),
    else the first ``[x]``. No range check (FastChat has none; MT-Bench asks for 1-10). Where
    FastChat records -1 for "no rating", this returns None.
    """
    match = _ONE_SCORE.search(judgment) or _ONE_SCORE_BACKUP.search(judgment)
    return float(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# Pairwise, AlpacaEval style

#: Model identifiers of the pairwise prompt: output_1 is "m", output_2 is "M" (AlpacaEval's choice).
PAIRWISE_IDS: tuple[str, str] = ("m", "M")

_PAIRWISE_SYSTEM = (
    "You are an impartial evaluator of AI assistants. You compare two responses to the same "
    "instruction and decide which one a careful human reader would prefer, judging correctness, "
    "helpfulness, relevance and clarity against what the instruction actually asks for."
)

_PAIRWISE_USER = """Two language models were given the instruction below. Read the instruction and both responses, then tell me which model gave the better response.

<instruction>
{instruction}
</instruction>

The responses are listed in no particular order. Each is labelled with its model identifier: the lowercase letter m or the uppercase letter M.

<response model="m">
{output_1}
</response>

<response model="M">
{output_2}
</response>

Which model's response is better? Answer with its identifier only: exactly m or M, with nothing else (no quotes, no explanation, no punctuation)."""

_PAIRWISE_LAST_LINE = re.compile(
    r"""^(?i:(?:the\s+)?(?:best|better|winning|preferred)?\s*(?:model|response|answer)?\s*(?:identifier)?\s*(?:is|[:=\-])?\s*)"""
    r"""["'`*\s]*(m|M)["'`*.\s]*$"""
)


def pairwise_prompt(instruction: str, output_1: str, output_2: str) -> tuple[str, str]:
    """The (system, user) messages asking a judge which of two outputs is better, answered "m" or "M".

    Modelled on AlpacaEval 2.0's judge (``alpaca_eval_clf_gpt4_turbo``, read with log-probabilities
    in ``weighted_alpaca_eval_gpt4_turbo``; the ``alpaca_eval_gpt4_turbo_fn`` variant asks the same
    question through a function call): an instruction, two outputs tagged with the one-token
    identifiers ``m`` (``output_1``, by convention the reference) and ``M`` (``output_2``, the model
    under test), and a one-identifier answer, so that the first token's log-probabilities give a
    graded preference (:func:`preference_from_logprobs`) and one token of output suffices. The wording
    is our own; like AlpacaEval's it says nothing about length, because the length-controlled win rate
    corrects the judge's length bias afterwards. Values are inserted verbatim.

    Callers should present the pair in a random (seeded) order to cancel position bias and map the
    verdict back with :func:`flip_preference`, as AlpacaEval does; identical outputs should be
    scored 1.5 without asking a judge.
    """
    user = _PAIRWISE_USER.format(instruction=instruction, output_1=output_1, output_2=output_2)
    return _PAIRWISE_SYSTEM, user


def parse_pairwise(verdict: str) -> float | None:
    """The preference a pairwise verdict states: 1.0 for ``m`` (output_1 better), 2.0 for ``M``
    (output_2 better), None when it names neither.

    Accepts the bare identifier with surrounding whitespace, quotes, backticks, bold markers or a
    final period, and, for chattier judges, a last line such as ``Best model: M``. The letter's case
    decides (``m`` vs ``M``). The format has no tie, so this never returns 1.5; ties arise from
    :func:`preference_from_logprobs` or from identical outputs.
    """
    lines = [line for line in verdict.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _PAIRWISE_LAST_LINE.match(lines[-1].strip())
    if match is None:
        return None
    return 1.0 if match.group(1) == PAIRWISE_IDS[0] else 2.0


def preference_from_logprobs(logprobs: Mapping[str, float]) -> float | None:
    """A graded preference from the judge's first-token log-probabilities (AlpacaEval's
    ``logprob_parser`` with ``is_binarize=False``): ``2 - P(m) / (P(m) + P(M))``.

    ``logprobs`` maps tokens to natural-log probabilities (e.g. an OpenAI ``top_logprobs`` list turned
    into a dict); a missing identifier has probability 0. Returns None when neither identifier is
    present. This is how the leaderboard's fractional preferences (1.0000001827, ...) arise.
    """
    lp_1 = logprobs.get(PAIRWISE_IDS[0], -math.inf)
    lp_2 = logprobs.get(PAIRWISE_IDS[1], -math.inf)
    if lp_1 == -math.inf and lp_2 == -math.inf:
        return None
    top = max(lp_1, lp_2)
    p_1 = math.exp(lp_1 - top) / (math.exp(lp_1 - top) + math.exp(lp_2 - top))
    return 2.0 - p_1


def flip_preference(preference: float) -> float:
    """The preference for the swapped order (``3 - p``): maps a verdict on (output_2, output_1) back."""
    return 3.0 - preference
