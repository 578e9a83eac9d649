"""Answer extraction for verifiable tasks: the final number, a choice letter, normalised text.

Pure functions, no I/O. `extract_number` is tuned on real recorded replies (GSM8K, 18 models): most
replies are a JSON object with "reasoning" and "answer" fields, often inside a ```json fence, and many
are not strict JSON (raw newlines inside strings, truncation, trailing prose).
"""

from __future__ import annotations

import json
import re
import string
from fractions import Fraction
from typing import Any

# A number: optional sign and currency, thousands groups or plain digits, optional decimals, or a fraction.
_NUM = r"-?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+)(?:\.\d+)?(?:/\d+)?|-?\$?\.\d+"
_NUMBER = re.compile(rf"(?<![\w.])(?:{_NUM})")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.S)
_ANSWER_FIELD = re.compile(r"""["']?answer["']?\s*:\s*("(?:[^"\\]|\\.)*"?|[^,}\n]*)""", re.I)
_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*(?:of\s*)?[:\s]*\**\s*([^\n]*)", re.I
)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _normalize_number(raw: str) -> str | None:
    """Canonical form of one numeric token: no `$`, commas, `%`, units or trailing `.`; "18.00" -> "18"."""
    s = raw.strip().replace("$", "").replace(" ", "").replace(",", "").rstrip(".%")
    if s.startswith("+"):
        s = s[1:]
    if "/" in s:
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
        s = s.rstrip("0").rstrip(".") or "0"
        if s.startswith("-."):
            s = "-0" + s[1:]
        elif s.startswith("."):
            s = "0" + s
    return "0" if s in ("-0", "") else s


def _numbers(text: str) -> list[str]:
    """Every number in `text`, normalised, in order of appearance."""
    out = []
    for match in _NUMBER.finditer(text):
        value = _normalize_number(match.group(0))
        if value is not None:
            out.append(value)
    return out


def _number_in_answer(value: str) -> str | None:
    """The number an answer field or phrase states: its first number ("18 dollars" -> "18").

    When the field holds working instead of a bare number ("3*68 + 2*80 = 364"), the first number is
    taken, as GSM8K's published scorers do; guessing which later number was meant would over-credit.
    """
    found = _numbers(value.replace("\\n", "\n"))
    return found[0] if found else None


def _json_objects(text: str) -> list[Any]:
    """JSON values found in `text`: each fenced block, then the span from the first `{` to the last `}`."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    found = []
    for chunk in candidates:
        try:
            found.append(json.loads(chunk.strip(), strict=False))  # strict=False: raw newlines in strings
        except ValueError:
            continue
    return found


def _from_json(text: str) -> str | None:
    """The number in a JSON object's "answer" field (parsed, or matched by regex when malformed)."""
    for obj in _json_objects(text):
        if isinstance(obj, dict) and "answer" in obj:
            answer = obj["answer"]
            if isinstance(answer, bool) or answer is None:
                continue
            if isinstance(answer, (int, float)):
                return _normalize_number(repr(answer))
            if isinstance(answer, str):
                got = _number_in_answer(answer)
                if got is not None:
                    return got
    for match in reversed(list(_ANSWER_FIELD.finditer(text))):
        got = _number_in_answer(match.group(1).strip().strip('"'))
        if got is not None:
            return got
    return None


def _from_pattern(pattern: re.Pattern[str], text: str) -> str | None:
    """The number in the last match of `pattern` that contains one."""
    for match in reversed(list(pattern.finditer(text))):
        got = _number_in_answer(match.group(1))
        if got is not None:
            return got
    return None


def extract_number(text: str) -> str | None:
    """The final numeric answer of a reply, normalised (e.g. "$1,234.00" -> "1234"), or None.

    Tried in order: a JSON object's "answer" field (also inside ```json fences, regex when malformed),
    a GSM8K-style `#### 18` line, "the answer is X" / "Answer: X", `\\boxed{X}`, the last number.
    """
    for step in (
        lambda: _from_json(text),
        lambda: _from_pattern(_HASHES, text),
        lambda: _from_pattern(_ANSWER_IS, text),
        lambda: _from_pattern(_BOXED, text),
    ):
        got = step()
        if got is not None:
            return got
    found = _numbers(text)
    return found[-1] if found else None


def _to_fraction(value: str) -> Fraction | None:
    norm = _normalize_number(value) if _NUMBER.fullmatch(value.strip()) else None
    if norm is None:
        norm = _number_in_answer(value)
    if norm is None:
        return None
    try:
        if "/" in norm:
            num, _, den = norm.partition("/")
            return Fraction(num) / Fraction(den)
        return Fraction(norm)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(a: str, b: str, *, tol: float = 1e-6) -> bool:
    """True when `a` and `b` denote the same number within `tol` (after normalisation, e.g. "$1,800.00" == "1800")."""
    x, y = _to_fraction(a), _to_fraction(b)
    if x is None or y is None:
        return a.strip() == b.strip()
    return abs(float(x - y)) <= tol * max(1.0, abs(float(y)))


def extract_choice(text: str, choices: str = "ABCD") -> str | None:
    """The multiple-choice letter a reply picks ("(B)", "Answer: B", "B." at the start, "the answer is b")."""
    letters = re.escape(choices.upper() + choices.lower())
    pats = [
        rf"answer\s*(?:is|:)?\s*:?\s*\(?\**([{letters}])\b",
        rf"\(([{letters}])\)",
        rf"^\s*\**([{letters}])\s*[.):\]]",
        rf"^\s*\**([{letters}])\s*$",
        rf"\b(?:option|choice)\s*\(?([{letters}])\b",
    ]
    for pat in pats:
        found = re.findall(pat, text, re.I | re.M) if "answer" in pat else re.findall(pat, text, re.M)
        found = [f for f in found if f.upper() in choices.upper()]
        if found:
            return found[-1].upper() if "answer" in pat else found[0].upper()
    return None


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation for exact match: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())
