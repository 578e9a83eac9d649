"""Reading the answer out of a reply: its final number or its choice letter.

Pure functions, no I/O. `extract_number` was checked against real recorded replies (GSM8K, 18 models,
`tests/test_gsm8k_scoring.py`): most replies are a JSON object with "reasoning" and "answer" fields,
often inside a ```json fence, and many are not strict JSON (raw newlines inside strings, a missing
comma, escaped quotes, an unevaluated expression as the value, prose or further JSON after it).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from moa_lab.answers._numbers import clean_number, first_number, numbers_in

# An "answer" field: a quoted value (also with escaped quotes, \"answer\": \"18\") in group 1, or a
# bare number literal in group 2. A bare value that is not a number (an unevaluated "(5 * 18) - 4")
# is not an answer and does not match.
_ANSWER_FIELD = re.compile(
    r'\\?"answer\\?"\s*:\s*(?:\\?"((?:[^"\\\n]|\\[^"])*)|(-?\$?\d[\d,]*(?:\.\d+)?)\s*(?=[}\n]|,\s*["\n]|$))',
    re.I,
)
_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"\banswer\s*(?:is|:|=)([^\n]*)", re.I)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")


def _answer_fields(text: str) -> list[Any]:
    """Every "answer" value in `text`, in reading order.

    Well-formed JSON objects are decoded from each `{` (fenced or not; raw newlines inside strings are
    tolerated); "answer" fields outside them (malformed JSON) are matched by regex.
    """
    decoder = json.JSONDecoder(strict=False)
    found: list[tuple[int, Any]] = []
    spans: list[tuple[int, int]] = []
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict) and "answer" in obj:
            found.append((pos, obj["answer"]))
        spans.append((pos, end))
        pos = text.find("{", end)
    for match in _ANSWER_FIELD.finditer(text):
        if not any(start <= match.start() < end for start, end in spans):
            found.append((match.start(), match.group(1) if match.group(1) is not None else match.group(2)))
    return [value for _, value in sorted(found, key=lambda item: item[0])]


def _from_answer_fields(text: str) -> tuple[bool, str | None]:
    """(whether the reply declares an "answer" field, the number of the first field that has one).

    A declared answer without a number ("Cannot be determined", a dict of several values) is the
    model's answer all the same: the caller must not look for a number elsewhere in the reply. The
    first field wins: weak models often run on after answering and invent more questions and answers.
    """
    fields = _answer_fields(text)
    for answer in fields:
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            return True, clean_number(repr(answer))
        if isinstance(answer, str) and (got := first_number(answer)) is not None:
            return True, got
    return bool(fields), None


def _from_pattern(pattern: re.Pattern[str], text: str) -> str | None:
    """The number in the last match of `pattern` that holds one."""
    for match in reversed(list(pattern.finditer(text))):
        if (got := first_number(match.group(1))) is not None:
            return got
    return None


@functools.lru_cache(maxsize=1 << 16)  # a study reads the same replies in every trial
def extract_number(text: str) -> str | None:
    """The final numeric answer of a reply, normalised ("$1,234.50" -> "1234.5", "18.00" -> "18"), or None.

    Tried in order: a JSON "answer" field (parsed, also inside ```json fences, or matched by regex
    when the JSON is malformed), a GSM8K-style `#### 18` line, "the answer is X" / "Answer: X",
    `\\boxed{X}`, and finally the last number in the text.
    """
    declared, got = _from_answer_fields(text)
    if declared:
        return got
    for pattern in (_HASHES, _ANSWER_IS, _BOXED):
        if (got := _from_pattern(pattern, text)) is not None:
            return got
    found = numbers_in(text)
    return found[-1] if found else None


def extract_choice(text: str, choices: str = "ABCD") -> str | None:
    """The multiple-choice letter a reply picks, upper-cased, or None.

    In order: the last "answer is B" / "Answer: (B)" statement (a lower-case letter only when it ends
    the statement, so "the answer is a bit..." is not "A"); a single distinct "(B)" in the text; a
    reply that starts with "B." / "B)" / "B:" or is just "B"; "option B" / "choice B".
    """
    upper = re.escape(choices.upper())
    any_case = re.escape(choices.upper() + choices.lower())
    letter = rf"(?:([{upper}])\b|([{any_case}])(?=\s*(?:$|[.,;:!)\]*])))"
    stated = re.findall(rf"(?i:\banswer(?:\s+is)?)[\s:*(\[]*(?i:(?:option|choice)\s+)?{letter}", text, re.M)
    if stated:
        return "".join(stated[-1]).upper()
    parenthesised = set(re.findall(rf"\(([{upper}])\)", text))
    if len(parenthesised) == 1:
        return parenthesised.pop()
    leading = re.match(rf"\s*\**([{any_case}])\**\s*(?:[.):\]]|$)", text)
    if leading:
        return leading.group(1).upper()
    option = re.findall(rf"(?i:\b(?:option|choice))\s*\(?([{upper}])\b", text)
    return option[-1].upper() if option else None
