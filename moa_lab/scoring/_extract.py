"""Answer extraction for verifiable tasks: the final number, a choice letter, normalised text.

Pure functions, no I/O. `extract_number` was checked against real recorded replies (GSM8K, 18 models,
`tests/test_gsm8k_scoring.py`): most replies are a JSON object with "reasoning" and "answer" fields,
often inside a ```json fence, and many are not strict JSON (raw newlines inside strings, a missing
comma, escaped quotes, an unevaluated expression as the value, prose or further JSON after it).
"""

from __future__ import annotations

import json
import re
import string
from fractions import Fraction
from typing import Any

# One number: optional sign and `$`, thousands groups or plain digits, optional decimals or a `/d` fraction
# (not the minutes of a clock time "2:30").
_NUMBER = re.compile(r"(?<![\w.])(?<!\d:)(?:-?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?|-?\$?\.\d+)")
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
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def _normalize_number(raw: str) -> str | None:
    """Canonical text of one numeric token: no `$`, commas, `%` or trailing `.`; "18.00" -> "18", "-$4,875" -> "-4875"."""
    s = raw.strip().replace("$", "").replace(" ", "").replace(",", "").rstrip(".%").removeprefix("+")
    if "/" in s:  # a fraction stays as written unless it is a whole number ("35/7" -> "5")
        num, _, den = s.partition("/")
        try:
            value = Fraction(num) / Fraction(den)
        except (ValueError, ZeroDivisionError):
            return None
        return str(value.numerator) if value.denominator == 1 else s
    try:
        float(s)
    except ValueError:
        return None
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    whole, dot, frac = s.partition(".")
    whole = str(int(whole)) if whole not in ("", "-") else whole + "0"  # "007" -> "7", "-.5" -> "-0.5"
    return "0" if whole + dot + frac == "-0" else whole + dot + frac


def _numbers(text: str) -> list[str]:
    """Every number in `text`, normalised, in reading order."""
    found = (_normalize_number(m.group(0)) for m in _NUMBER.finditer(text))
    return [n for n in found if n is not None]


def _number_in_answer(value: str) -> str | None:
    """The number an answer field or phrase states: its first number ("18 dollars" -> "18", "$40 more" -> "40").

    A field holding working instead of a bare number ("3*68 + 2*80 = 364") yields its first number, as
    GSM8K's published scorers read it: guessing which later number was meant would over-credit.
    """
    found = _numbers(value.replace("\\n", "\n"))
    return found[0] if found else None


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
            return True, _normalize_number(repr(answer))
        if isinstance(answer, str) and (got := _number_in_answer(answer)) is not None:
            return True, got
    return bool(fields), None


def _from_pattern(pattern: re.Pattern[str], text: str) -> str | None:
    """The number in the last match of `pattern` that holds one."""
    for match in reversed(list(pattern.finditer(text))):
        if (got := _number_in_answer(match.group(1))) is not None:
            return got
    return None


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
    found = _numbers(text)
    return found[-1] if found else None


def _as_fraction(value: str) -> Fraction | None:
    """The exact value of a number written as text ("$1,800.00", "3/4", "18 apples"), or None."""
    norm = _normalize_number(value) if _NUMBER.fullmatch(value.strip()) else _number_in_answer(value)
    if norm is None:
        return None
    num, _, den = norm.partition("/")
    try:
        return Fraction(num) / Fraction(den or "1")
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(a: str, b: str, *, tol: float = 1e-6) -> bool:
    """Whether `a` and `b` denote the same number ("1,800" == "$1800.00", "0.75" == "3/4").

    The tolerance is absolute for numbers up to 1 and relative above. Text that is not numeric on
    either side is compared as stripped strings.
    """
    x, y = _as_fraction(a), _as_fraction(b)
    if x is None or y is None:
        return a.strip() == b.strip()
    return abs(float(x - y)) <= tol * max(1.0, abs(float(y)))


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


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation for exact match: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())
