"""Answer extraction: numbers, choice letters and text normalisation.

The REAL_REPLIES are excerpts of recorded GSM8K replies (../shared/data/gsm8k/responses): the
structure that makes each one tricky is kept verbatim; long reasoning is shortened with "...".
"""

from __future__ import annotations

import pytest

from moa_lab.answers import equal, extract_choice, extract_number, normalize_number, normalize_text

# (what makes it tricky, recorded reply excerpt, expected extract_number)
REAL_REPLIES: list[tuple[str, str, str | None]] = [
    (
        "fenced JSON, thousands comma (gpt-4o-2024-05-13, #2)",
        '```json\n{\n    "reasoning": "... The profit is $200,000 (new value) - $130,000 (total cost) = $70,000.",\n'
        '    "answer": "70,000"\n}\n```',
        "70000",
    ),
    (
        "prose before the fence (Meta-Llama-3-70B-Instruct, #3)",
        'Here is the solution:\n\n```json\n{\n    "reasoning": "James runs 3 sprints 3 times a week. Each sprint is '
        '60 meters. So, he runs 3 x 60 = 180 meters each time. ... he runs 180 x 3 = 540 meters a week.",\n'
        '    "answer": "540"\n}\n```',
        "540",
    ),
    (
        "dollar sign, thousands comma and .00 (Yi-1.5-9B-Chat, #70)",
        '``` json\n{\n    "reasoning": "... the total amount of money she makes in a week is 495 * $15.00 = $7,425.00.",\n'
        '    "answer": "$7,425.00"\n}\n```',
        "7425",
    ),
    (
        "cents kept: $1,114.62 (gpt-3.5-turbo-0125, #162)",
        '```json\n{\n    "reasoning": "... Final Price = Original Price * (1 + 0.20)^18.",\n    "answer": "$1,114.62"\n}\n```',
        "1114.62",
    ),
    (
        "trailing .00 (Meta-Llama-3-70B-Instruct, #567)",
        'Here is my solution:\n\n```json\n{\n    "reasoning": "... $5.00 + $3.00 + $1.00 = $9.00.",\n'
        '    "answer": "9.00"\n}\n```',
        "9",
    ),
    (
        "negative number (Meta-Llama-3-70B-Instruct, #489)",
        '```json\n{\n    "reasoning": "... The highest temperatures are -48, 21, and -3. We add them up to get -48 + 21 + (-3) '
        '= -30. Then, we divide by 3 to get -30 / 3 = -10.",\n    "answer": "-10"\n}\n```',
        "-10",
    ),
    (
        "unit words after the number (Mistral-Nemo-Instruct-2407, #38), end-of-sequence tokens after",
        '```json\n{\n    "reasoning": "... his speed is 60 miles / 6 hours = 10 miles per hour.",\n'
        '    "answer": "10 miles per hour"\n}\n```</s></s></s>',
        "10",
    ),
    (
        "percent sign (Yi-1.5-9B-Chat, #14)",
        '``` json\n{\n    "reasoning": "... 12 out of 20 students is 60%.",\n    "answer": "60%"\n}\n```',
        "60",
    ),
    (
        "euro sign (Yi-1.5-9B-Chat, #165)",
        '``` json\n{\n    "reasoning": "... €1500 - €1423 = €77.",\n    "answer": "€77"\n}\n```',
        "77",
    ),
    (
        "bare JSON number, no fence (Meta-Llama-3.1-8B-Instruct, #25)",
        '{\n    "reasoning": "... the number of boxes of pizza Marie ordered is $17 / $8.50 = 2.",\n    "answer": 2\n}',
        "2",
    ),
    (
        "malformed JSON: raw newlines and no comma before answer (Phi-3.5-mini-instruct, #183)",
        '```json\n{\n    "reasoning": "First, let\'s calculate the total time ... 60 + 57 + 54 + 51 = 222 seconds.\n\n'
        "Now, ... 222 - 220 = 2 seconds.\n\nTherefore, the faster team wins by 2 seconds.\n\n"
        '"answer": "2"\n}\n```',
        "2",
    ),
    (
        "answer field inside the reasoning string with escaped quotes (Phi-3.5-mini-instruct, #591)",
        '```json\n{\n    "reasoning": "... Therefore, the Mastiff weighs 5 * 44 = 220 pounds. \\n\\nAnswer: '
        '\\"answer\\": \\"220\\""\n}\n```',
        "220",
    ),
    (
        "no answer key at all, 'Answer: \"15\"' (Phi-3.5-mini-instruct, #84)",
        "... W = L + 8\nW = 7 + 8\nW = 15\n\nSo, the team won 15 games.\n\nAnswer: \"15\"\n```",
        "15",
    ),
    (
        "unevaluated expression as a bare value, then a second JSON block (Yi-1.5-9B-Chat, #1269)",
        '``` json\n{\n    "reasoning": "First, we calculate the distance Elvis traveled west ...",\n'
        '    "answer": (5 * 18) - (8 * 18)\n}\n```\n\nCalculating the distances:\n'
        "- Net distance = 90 miles - 144 miles = -54 miles\n\n... Therefore, the final answer is 54 miles.\n\n"
        '``` json\n{\n    "answer": "54"\n}\n```',
        "54",
    ),
    (
        "runaway reply: the real answer, then an invented question and template (Phi-3.5-mini-instruct, #855)",
        '```json\n{\n    "reasoning": "Let\'s denote the ages ... So, I am 13 years old.\n\n    The final answer is:\n'
        '    {\n        "reasoning": "Let B represent the brother\'s age. ... thus my age is 16 - 3 = 13.",\n'
        '        "answer": "13"\n    }\n```\n\n\n## Question:\n\nIn a family, the father is four times as old as his '
        "son ...\n\n## Instruction\n\nPlease show your final answer in the `answer` field, e.g., "
        '`"answer": "42"`.\n\n```json\n{\n    "reasoning": "___",\n    "answer": "___"\n}\n```',
        "13",
    ),
    (
        "working instead of a number: its first number is read (gemma-2-2b-it style answer field)",
        '```json\n{\n    "reasoning": "...",\n    "answer": "7 * 3 + 1 = 22"\n}\n```',
        "7",
    ),
    (
        "declared non-answer: no number is taken from the reasoning (Mistral-Nemo-Instruct-2407, #181)",
        '```json\n{\n    "reasoning": "... Therefore, the number of red roses is 4 * 40 = 160. ... We only know that Sandra '
        'ordered 160 red roses in total.",\n    "answer": "Cannot be determined"\n}\n```</s>',
        None,
    ),
    (
        "several values in a dict (Meta-Llama-3.1-8B-Instruct, #753)",
        '{\n    "reasoning": "... Jeff has 96 - 10 = 86 glasses and 48 - 6 = 42 plates left.",\n'
        '    "answer": {\n        "glasses": 86,\n        "plates": 42\n    }\n}',
        None,
    ),
    (
        "clock time (gemini-1.5-flash, #1001)",
        '```json\n{\n  "reasoning": "... 3 hours before 5:00 pm is 2:00 pm.",\n  "answer": "2:00 pm"\n}\n```',
        "2",
    ),
    (
        "step-by-step prose, JSON after 'The final answer is:' (Meta-Llama-3.1-8B-Instruct, #253)",
        "## Step 4: Add 6 to the result\n12 + 6 = 18\n\n## Step 5: Determine the final floor\nBill is now on the "
        '18th floor.\n\nThe final answer is: \n```json\n{\n    "reasoning": "... adding 6 to that gives us 18.",\n'
        '    "answer": "18"\n}',
        "18",
    ),
    (
        "truncated JSON: the last number of the text (Mixtral-8x7B-Instruct-v0.1, #35)",
        '```json\n{\n    "reasoning": "In the first 20 minutes, Mike scores 4 points. An increase of 25% of 4 points is '
        '1 point (0.25 * 4 = 1). In the second 2',
        "2",
    ),
]


@pytest.mark.parametrize(("why", "reply", "expected"), REAL_REPLIES, ids=[r[0] for r in REAL_REPLIES])
def test_extract_number_on_recorded_replies(why: str, reply: str, expected: str | None) -> None:
    assert extract_number(reply) == expected, why


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", "1234.5"),
        ("18.00", "18"),
        ("-$4,875", "-4875"),
        ("The answer is 42.", "42"),
        ("Answer: 1,000 apples", "1000"),
        ("Janet makes 9 * 2 = 18 dollars.\n#### 18", "18"),
        ("so x = 7 and \\boxed{12}", "12"),
        ("The final answer is: $\\boxed{35}$", "35"),
        ("16 - 7 = 9 eggs", "9"),
        ("x = -5", "-5"),
        ("0.50", "0.5"),
        (".5", "0.5"),
        ("3/4", "3/4"),
        ("35/7", "5"),
        ("20%", "20"),
        ("007", "7"),
        ("-0.0", "0"),
        ("no digits here", None),
        ("", None),
    ],
)
def test_extract_number_patterns(text: str, expected: str | None) -> None:
    assert extract_number(text) == expected


def test_extract_number_order_json_before_other_patterns() -> None:
    text = 'The answer is 5.\n{"reasoning": "...", "answer": "7"}\n#### 9'
    assert extract_number(text) == "7"
    assert extract_number("The answer is 5.\n#### 9") == "9"
    assert extract_number("The answer is 5, then 6 more") == "5"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("18", "18", True),
        ("18.00", "18", True),
        ("$1,800", "1800", True),
        ("2,125", "2125", True),
        ("0.75", "3/4", True),
        ("-10", "-10.0", True),
        ("18", "18.0000001", True),
        ("18", "18.001", False),
        ("18", "-18", False),
        ("1114.62", "92", False),
        ("1/3", "0.3333333", True),
        ("18 apples", "$18", True),
        ("abc", "abc", False),
        ("abc", "18", False),
    ],
)
def test_numbers_are_equal_by_normal_form(a: str, b: str, same: bool) -> None:
    assert equal(normalize_number(a), normalize_number(b)) is same
    assert equal(normalize_number(b), normalize_number(a)) is same


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("**Answer:** D", "D"),
        ("the answer is b", "B"),
        ("answer: d.", "D"),
        ("Answer is option c.", "C"),
        ("B. Paris is the capital of France.", "B"),
        ("A", "A"),
        ("I think (C) is right.", "C"),
        ("I pick option A", "A"),
        ("The answer is a bit unclear, but (D) fits best.", "D"),
        ("(A) is wrong and (B) is wrong. So the answer is C.", "C"),
        ("I cannot decide.", None),
        ("Answer: E", None),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_custom_letters() -> None:
    assert extract_choice("Answer: E", choices="ABCDE") == "E"
    assert extract_choice("(F)", choices="ABCDEF") == "F"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  Paris.  ", "paris"),
        ("A cat, an apple and THE dog", "cat apple and dog"),
        ("Tokyo\n", "tokyo"),
        ("theatre", "theatre"),
        ("", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected
