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


def _alias(name: str, target: Extractor, doc: str) -> None:
    def factory() -> Extractor:
        return target

    factory.__doc__ = doc
    extractor(name)(factory)


# Older names, kept because topology specs, RunLogs and search studies record them.
_alias("answer", NUMERIC, "Same as numeric (the name the GSM8K experiments use).")
_alias("number", NUMERIC, "Same as numeric (it used to be the last number in the text).")
_alias("normalized", EXACT, "Same as exact (it used to keep articles and inner punctuation).")
