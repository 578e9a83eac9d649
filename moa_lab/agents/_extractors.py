"""The built-in answer extractors a `vote` names, one per pure scorer and under the same name, so a
vote groups answers exactly as that scorer compares them (`moa_lab.answers`)."""

from __future__ import annotations

from moa_lab.agents._agent import extractor
from moa_lab.answers import CHOICE, EXACT, NUMERIC, Extractor


@extractor("numeric")
def numeric() -> Extractor:
    """The final number (JSON "answer", ####, "answer is", last number), as the numeric scorer reads it."""
    return NUMERIC


@extractor("exact")
def exact() -> Extractor:
    """The first line, normalised (case, punctuation, articles) as the exact scorer compares it."""
    return EXACT


@extractor("choice")
def choice() -> Extractor:
    """The choice letter, as the choice scorer reads it."""
    return CHOICE


# Older names, kept because topology specs, RunLogs and search studies record them.
@extractor("answer")
def answer() -> Extractor:
    """Same as numeric (the name the GSM8K experiments use)."""
    return NUMERIC


@extractor("number")
def number() -> Extractor:
    """Same as numeric (it used to be the last number in the text)."""
    return NUMERIC


@extractor("normalized")
def normalized() -> Extractor:
    """Same as exact (it used to keep articles and inner punctuation)."""
    return EXACT
