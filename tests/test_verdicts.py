"""Judge prompts and verdict parsing, against FastChat's recorded MT-Bench GPT-4 judgments."""

from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path

import pytest

from moa_lab.scoring._verdicts import (
    NEED_REF_CATS,
    JudgePrompt,
    flip_preference,
    load_judge_prompts,
    pairwise_prompt,
    parse_pairwise,
    parse_rating,
    preference_from_logprobs,
    render_single,
    single_prompt_name,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MT = DATA / "mt_bench"
JUDGMENTS = MT / "gpt-4_single_judgments.jsonl"

needs_data = pytest.mark.skipif(
    not (JUDGMENTS.exists() and (MT / "judge_prompts.jsonl").exists() and (MT / "question.jsonl").exists()),
    reason=f"recorded MT-Bench data not found at {MT} (the shared data folder is absent on this machine)",
)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def judgments() -> list[dict]:
    return _jsonl(JUDGMENTS)


@pytest.fixture(scope="module")
def prompts() -> dict[str, JudgePrompt]:
    return load_judge_prompts(MT / "judge_prompts.jsonl")


@pytest.fixture(scope="module")
def questions() -> dict[int, dict]:
    return {q["question_id"]: q for q in _jsonl(MT / "question.jsonl")}


@pytest.fixture(scope="module")
def references() -> dict[int, list[str]]:
    return {r["question_id"]: r["choices"][0]["turns"] for r in _jsonl(MT / "reference_answer_gpt-4.jsonl")}


def _template_regex(template: str, known: dict[str, str]) -> re.Pattern[str]:
    """A regex matching the template rendered with `known` values; other fields become named groups
    (a field that repeats must repeat the same text)."""
    parts: list[str] = []
    seen: set[str] = set()
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name in known:
            parts.append(re.escape(known[name]))
        elif name in seen:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>.*?)")
            seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


# --- MT-Bench, recorded data -----------------------------------------------------------------


@needs_data
def test_parse_rating_reads_all_320_recorded_gpt4_judgments(judgments):
    assert len(judgments) == 320
    parsed = [parse_rating(j["judgment"]) for j in judgments]
    mismatches = [(j["question_id"], j["turn"], j["score"], got) for j, got in zip(judgments, parsed) if got != j["score"]]
    assert not mismatches, mismatches[:5]
    assert sum(got == j["score"] for j, got in zip(judgments, parsed)) == 320


@needs_data
def test_load_judge_prompts(prompts):
    assert set(prompts) == {
        "pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn",
        "single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn",
    }  # fmt: skip
    single = prompts["single-v1"]
    assert single.type == "single" and single.output_format == "[[rating]]"
    assert single.system_prompt == "You are a helpful assistant."
    assert single.fields == {"question", "answer"} and not single.multi_turn and not single.ref_based
    math_mt = prompts["single-math-v1-multi-turn"]
    assert math_mt.fields == {"question_1", "question_2", "answer_1", "answer_2", "ref_answer_1", "ref_answer_2"}
    assert math_mt.multi_turn and math_mt.ref_based
    assert prompts["pair-v2"].output_format == "[[A]]"


@needs_data
def test_render_single_reproduces_every_recorded_user_prompt(judgments, prompts, questions, references):
    """Each stored user_prompt is parsed with its template (questions and reference answers taken from
    question.jsonl / reference_answer_gpt-4.jsonl, the judged answers read back from the prompt) and
    re-rendered; all 320 must come out identical, under the prompt MT-Bench picks for the category."""
    seen_names = set()
    for j in judgments:
        judge_model, name = j["judge"]
        assert judge_model == "gpt-4"
        prompt = prompts[name]
        seen_names.add(name)
        question = questions[j["question_id"]]
        assert name == single_prompt_name(question["category"], multi_turn=j["turn"] == 2)
        q1, q2 = question["turns"]
        ref = references.get(j["question_id"])
        assert (ref is not None) == prompt.ref_based

        known = {"question": q1, "question_1": q1, "question_2": q2}
        if ref is not None:
            known.update(ref_answer_1=ref[0], ref_answer_2=ref[1])
        match = _template_regex(prompt.prompt_template, known).fullmatch(j["user_prompt"])
        assert match is not None, f"question {j['question_id']} turn {j['turn']}: prompt does not fit {name}"
        answers = match.groupdict()

        if prompt.multi_turn:
            system, user = render_single(
                prompt,
                q1,
                answers["answer_1"],
                question_2=q2,
                answer_2=answers["answer_2"],
                ref_answer=ref[0] if ref else None,
                ref_answer_2=ref[1] if ref else None,
            )
        else:
            system, user = render_single(prompt, q1, answers["answer"], ref_answer=ref[0] if ref else None)
        assert user == j["user_prompt"]
        assert system == prompt.system_prompt
    assert seen_names == {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"}


# --- MT-Bench, pure behaviour ----------------------------------------------------------------


def _prompt(template: str, *, type_: str = "single") -> JudgePrompt:
    return JudgePrompt(name="t", type=type_, system_prompt="sys", prompt_template=template, output_format="[[rating]]")


def test_render_single_inserts_values_verbatim_and_checks_what_is_needed():
    prompt = _prompt("Q: {question}\nA: {answer}\nR: {ref_answer_1}")
    system, user = render_single(prompt, "2+2?", "It is {4} [[10]]", ref_answer="4")
    assert (system, user) == ("sys", "Q: 2+2?\nA: It is {4} [[10]]\nR: 4")
    with pytest.raises(ValueError, match="needs ref_answer"):
        render_single(prompt, "2+2?", "4")
    multi = _prompt("{question_1}|{answer_1}|{question_2}|{answer_2}")
    assert render_single(multi, "a", "b", question_2="c", answer_2="d")[1] == "a|b|c|d"
    with pytest.raises(ValueError, match="answer_2"):
        render_single(multi, "a", "b", question_2="c")
    with pytest.raises(ValueError, match="not a single-answer prompt"):
        render_single(_prompt("{question}", type_="pairwise"), "a", "b")


def test_single_prompt_name():
    assert NEED_REF_CATS == {"math", "reasoning", "coding"}
    assert single_prompt_name("writing") == "single-v1"
    assert single_prompt_name("coding", multi_turn=True) == "single-math-v1-multi-turn"


@pytest.mark.parametrize(
    ("judgment", "expected"),
    [
        ("Good answer. Rating: [[8]]", 8.0),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10.0),
        ("Rating: [7]", 7.0),  # FastChat's fallback
        ("see [3] ... final: [[9]]", 9.0),  # [[x]] wins over an earlier [x]
        ("Rating: [[7.0]]", 7.0),
        ("I give it 8/10.", None),
        ("Rating: [[eight]]", None),
        ("", None),
    ],
)
def test_parse_rating_cases(judgment, expected):
    assert parse_rating(judgment) == expected


# --- pairwise --------------------------------------------------------------------------------


def test_pairwise_prompt_labels_the_outputs_m_and_M_in_order():
    system, user = pairwise_prompt("Say {hi}.", "first {x}", "second")
    assert "impartial" in system
    assert "Say {hi}." in user
    assert user.index('<response model="m">\nfirst {x}\n</response>') < user.index('<response model="M">\nsecond\n</response>')
    assert user.rstrip().endswith("(no quotes, no explanation, no punctuation).")


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("m", 1.0),
        ("M", 2.0),
        ("  M\n", 2.0),
        ("`m`", 1.0),
        ('"M".', 2.0),
        ("**m**", 1.0),
        ("The second is clearer.\nBest model: M", 2.0),
        ("Model m", 1.0),
        ("model identifier: M", 2.0),
        ("", None),
        ("tie", None),
        ("mM", None),
        ("Both are fine", None),
    ],
)
def test_parse_pairwise(verdict, expected):
    assert parse_pairwise(verdict) == expected


def test_preference_from_logprobs_and_flip():
    assert preference_from_logprobs({"m": math.log(0.25), "M": math.log(0.75), "The": -9.0}) == pytest.approx(1.75)
    assert preference_from_logprobs({"m": -0.01}) == pytest.approx(1.0)
    assert preference_from_logprobs({"M": -3.0}) == pytest.approx(2.0)
    assert preference_from_logprobs({"m": -0.7, "M": -0.7}) == pytest.approx(1.5)
    assert preference_from_logprobs({"Both": -0.1}) is None
    assert flip_preference(1.0) == 2.0 and flip_preference(1.25) == 1.75
