"""Answers: reading the answer out of a reply, its normal form, and when two answers are equal.

Pure functions with no dependency beyond the standard library; votes (`agents`) and scorers
(`scoring`) both decide through this package, so they cannot disagree about an answer.
"""

from moa_lab.answers._extract import extract_choice, extract_number
from moa_lab.answers._extractor import CHOICE, EXACT, NUMERIC, Extractor, equal, majority
from moa_lab.answers._numbers import normalize_number
from moa_lab.answers._text import first_line, normalize_choice, normalize_text

__all__ = [
    "CHOICE",
    "EXACT",
    "NUMERIC",
    "Extractor",
    "equal",
    "extract_choice",
    "extract_number",
    "first_line",
    "majority",
    "normalize_choice",
    "normalize_number",
    "normalize_text",
]
