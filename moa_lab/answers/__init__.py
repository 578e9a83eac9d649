"""Answers: reading the answer out of a reply, its normal form, and when two answers are equal.

Pure functions with no dependency beyond the standard library (sacrebleu, for chrF, loads on its
first use); votes (`agents`), scorers (`scoring`) and cascades (`pipeline`) all decide through this
package, so they cannot disagree about an answer.
"""

from moa_lab.answers._agreement import MEASURES, Agreement, Measure, agreement, chrf, similarity_agreement, vote_agreement
from moa_lab.answers._extract import extract_choice, extract_number
from moa_lab.answers._extractor import CHOICE, EXACT, NUMERIC, Extractor, equal, majority
from moa_lab.answers._numbers import normalize_number
from moa_lab.answers._text import first_line, normalize_choice, normalize_text

__all__ = [
    "CHOICE",
    "EXACT",
    "MEASURES",
    "NUMERIC",
    "Agreement",
    "Extractor",
    "Measure",
    "agreement",
    "chrf",
    "equal",
    "extract_choice",
    "extract_number",
    "first_line",
    "majority",
    "normalize_choice",
    "normalize_number",
    "normalize_text",
    "similarity_agreement",
    "vote_agreement",
]
