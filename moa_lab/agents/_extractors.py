"""Answer extractors for voting: text -> the comparable answer. Pure functions."""

from __future__ import annotations

import re

from moa_lab.agents._agent import extractor

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@extractor("normalized")
def normalized() -> object:
    """First line, lower-cased, surrounding punctuation and spaces removed."""
    return _normalized


@extractor("number")
def number() -> object:
    """The last number in the text (commas dropped, trailing .0 removed); empty if none."""
    return _last_number


def _normalized(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip().strip(" .,!?;:\"'`*").lower() if lines else ""


def _last_number(text: str) -> str:
    found = _NUMBER.findall(text)
    if not found:
        return ""
    value = found[-1].replace(",", "")
    return value[:-2] if value.endswith(".0") else value
