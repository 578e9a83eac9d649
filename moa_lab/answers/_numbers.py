"""Numbers in replies: finding them, writing each one way, and the value two numbers are compared by."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

# One number: optional sign and `$`, thousands groups or plain digits, optional decimals or a `/d` fraction
# (not the minutes of a clock time "2:30").
NUMBER = re.compile(r"(?<![\w.])(?<!\d:)(?:-?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?|-?\$?\.\d+)")

PLACES = 6
"""Decimal places two numbers are compared to: "18.0000001" is 18 and "1/3" is "0.3333333"."""


def clean_number(raw: str) -> str | None:
    """One numeric token as written, tidied: no `$`, commas, `%` or trailing `.`; "18.00" -> "18",
    "-$4,875" -> "-4875", "35/7" -> "5" (a fraction that is not whole stays as written), or None."""
    s = raw.strip().replace("$", "").replace(" ", "").replace(",", "").rstrip(".%").removeprefix("+")
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
        s = s.rstrip("0").rstrip(".")
    whole, dot, frac = s.partition(".")
    whole = str(int(whole)) if whole not in ("", "-") else whole + "0"  # "007" -> "7", "-.5" -> "-0.5"
    return "0" if whole + dot + frac == "-0" else whole + dot + frac


def numbers_in(text: str) -> list[str]:
    """Every number in `text`, cleaned, in reading order."""
    found = (clean_number(m.group(0)) for m in NUMBER.finditer(text))
    return [n for n in found if n is not None]


def first_number(value: str) -> str | None:
    """The number an answer field or phrase states: its first number ("18 dollars" -> "18", "$40 more" -> "40").

    A field holding working instead of a bare number ("3*68 + 2*80 = 364") yields its first number, as
    GSM8K's published scorers read it: guessing which later number was meant would over-credit.
    """
    found = numbers_in(value.replace("\\n", "\n"))
    return found[0] if found else None


@functools.lru_cache(maxsize=1 << 16)
def normalize_number(text: str) -> str:
    """The value a number (or the first number of a phrase) stands for, as text that is equal exactly
    when the values are: rounded to `PLACES` decimals, no trailing zeros ("$1,800.00" -> "1800",
    "3/4" -> "0.75", "18 apples" -> "18"); "" when `text` states no number."""
    stripped = text.strip()
    cleaned = clean_number(stripped) if NUMBER.fullmatch(stripped) else first_number(stripped)
    if cleaned is None:
        return ""
    num, _, den = cleaned.partition("/")
    try:
        value = Fraction(num) / Fraction(den or "1")
    except (ValueError, ZeroDivisionError):
        return ""
    units = round(value * 10**PLACES)
    whole, frac = divmod(abs(units), 10**PLACES)
    decimals = f"{frac:0{PLACES}d}".rstrip("0")
    return ("-" if units < 0 else "") + (f"{whole}.{decimals}" if decimals else str(whole))
