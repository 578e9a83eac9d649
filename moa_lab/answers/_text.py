"""Short text answers: the first line of a reply, and the normal form exact match compares."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def first_line(text: str) -> str | None:
    """The first line of a reply, stripped, or None for a blank reply (short-answer tasks answer there)."""
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation for exact match: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_choice(text: str) -> str:
    """A choice letter as compared: stripped and upper-cased ("b " -> "B")."""
    return text.strip().upper()
