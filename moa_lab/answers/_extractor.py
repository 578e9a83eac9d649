"""What an answer is, once for votes and scorers: how it is read from a reply, and when two are equal.

An `Extractor` turns a reply into a *key*: the answer it states, in normal form. Two replies give the
same answer exactly when their keys are equal and not empty (`equal`); a vote counts replies by key
(`majority`), and a scorer marks a reply right when its key equals the normal form of the target.
Because equality is of keys, it is an equivalence: a vote's groups and a scorer's verdicts cannot
disagree, which a tolerance-based comparison (not transitive) could not promise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from moa_lab.answers._extract import extract_choice, extract_number
from moa_lab.answers._numbers import normalize_number
from moa_lab.answers._text import first_line, normalize_choice, normalize_text


def equal(a: str, b: str) -> bool:
    """Whether two keys are the same answer: equal, and not the empty key of a reply that states none."""
    return bool(a) and a == b


def majority(keys: Sequence[str]) -> tuple[int, int] | None:
    """(position of the winning key, its count): the key most positions share, ties going to the key
    seen first; empty keys do not vote. None when every key is empty."""
    counts = Counter(k for k in keys if k)
    if not counts:
        return None
    best = max(counts.values())
    return next(i for i, k in enumerate(keys) if counts.get(k) == best), best


@dataclass(frozen=True)
class Extractor:
    """One kind of answer: `read` finds it in a reply (None when the reply states none) and
    `normalize` writes an answer or a target in the form keys are compared in ("" for no answer).

    Calling an extractor gives a reply's key, so it is also the plain `(text) -> str` function that
    the `vote` aggregator and router training accept.
    """

    name: str
    read: Callable[[str], str | None]
    normalize: Callable[[str], str]

    def __call__(self, reply: str) -> str:
        """The key of `reply`: its answer in normal form, or "" when it states none."""
        return self.key_of(self.read(reply))

    def key_of(self, answer: str | None) -> str:
        """The key of an answer already read (None -> "")."""
        return "" if answer is None else self.normalize(answer)

    def matches(self, reply: str, target: str) -> bool:
        """Whether `reply` states the answer `target` (the scorer's verdict)."""
        return equal(self(reply), self.normalize(target))


NUMERIC = Extractor("numeric", extract_number, normalize_number)
"""The final number (JSON "answer" field, `####`, "the answer is", `\\boxed{}`, else the last number),
compared by value to 6 decimal places ("$1,800.00" = "1800", "3/4" = "0.75")."""

EXACT = Extractor("exact", first_line, normalize_text)
"""The first line, compared after SQuAD normalisation (case, punctuation and articles ignored)."""

CHOICE = Extractor("choice", extract_choice, normalize_choice)
"""The multiple-choice letter (A-D) a reply picks."""
