"""Votes and scorers decide through one answers module, so they agree on which answers are the same.

The recorded-data test needs ../shared/data/gsm8k (skips with a reason when it is absent).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from pathlib import Path

import pytest

from moa_lab.answers import EXACT, NUMERIC, equal, majority, normalize_number
from moa_lab.benchmarks import load_gsm8k, load_recorded_responses
from moa_lab.registry import build

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="module")
def gsm8k() -> Path:
    if not GSM8K.is_dir():
        pytest.skip(f"recorded GSM8K data not found at {GSM8K} (the shared data folder is not on this machine)")
    return GSM8K


@pytest.mark.parametrize(
    ("text", "key"),
    [("$1,800.00", "1800"), ("3/4", "0.75"), ("-0.0", "0"), ("8/3", "2.666667"), ("2.6666666666666665", "2.666667"),
     ("18 apples", "18"), ("99076.93", "99076.93"), ("1/0", ""), ("none", "")],
)
def test_a_number_is_keyed_by_its_value(text: str, key: str) -> None:
    assert normalize_number(text) == key


def test_majority_ignores_empty_keys_and_breaks_ties_by_first_seen() -> None:
    assert majority(["", "7", "5", "5", "7"]) == (1, 2)
    assert majority(["", "9", "", "9"]) == (1, 2)
    assert majority(["", ""]) is None
    assert not equal("", "")


@pytest.mark.parametrize(
    ("extractor", "scorer", "first", "second", "same"),
    [
        # A tolerance made the scorer call these equal while the vote, comparing text, did not.
        ("answer", "numeric", "The answer is 8/3", "2.6666666666666665", True),
        ("answer", "numeric", '{"answer": "$1,800.00"}', "#### 1800", True),
        ("answer", "numeric", "99076.93", "The answer is 99077.", False),
        # The vote used to keep articles and inner punctuation that exact match drops.
        ("normalized", "exact", "The Eiffel Tower.", "eiffel  tower", True),
        ("choice", "choice", "The answer is (b).", "B. Paris", True),
    ],
)
def test_vote_and_scorer_agree_on_a_pair(extractor: str, scorer: str, first: str, second: str, same: bool) -> None:
    vote = build("aggregator", "vote", {"extractor": extractor})
    match = build("scorer", scorer)
    assert (vote.choose([first, second]) == (0, 2)) is same
    assert match.match(second, match.extractor.read(first)) is same
    assert match.match(first, match.extractor.read(second)) is same


def test_vote_and_scorer_agree_on_every_pair_of_recorded_gsm8k_replies(gsm8k: Path) -> None:
    """For every question and every pair of the 18 models' replies: the vote (as the GSM8K
    experiments configure it) counts the two as one answer exactly when the numeric scorer, given
    one reply's extracted answer as the target, marks the other right; and two replies the vote
    counts as one answer always score the same against the gold answer."""
    samples = load_gsm8k(gsm8k)
    replies = load_recorded_responses(gsm8k)
    models = sorted(replies)
    vote = build("aggregator", "vote", {"extractor": "answer"})
    scorer = build("scorer", "numeric")
    # Memoised so that each reply is read once; the deciding code (Vote.choose, Match.match) is unchanged.
    vote.extract = functools.cache(vote.extract)
    ext = scorer.extractor
    scorer.extractor = dataclasses.replace(ext, read=functools.cache(ext.read), normalize=functools.cache(ext.normalize))

    pairs = same = 0
    disagree: list[tuple[str, str, str]] = []
    for sample in samples:
        texts = [replies[m][sample.id] for m in models]
        stated = [scorer.extractor.read(t) for t in texts]
        right = [scorer.match(t, str(sample.target)) for t in texts]
        for i, j in itertools.combinations(range(len(texts)), 2):
            pairs += 1
            by_vote = vote.choose([texts[i], texts[j]]) == (0, 2)
            by_scorer = [stated[i] is not None and scorer.match(texts[j], stated[i]),
                         stated[j] is not None and scorer.match(texts[i], stated[j])]
            same += by_vote
            if by_scorer != [by_vote, by_vote] or (by_vote and right[i] != right[j]):
                disagree.append((sample.id, f"{models[i]}: {stated[i]!r}", f"{models[j]}: {stated[j]!r}"))
    print(f"\n{pairs} pairs of replies to {len(samples)} questions; {same} pairs are one answer to both")
    assert pairs == len(samples) * len(models) * (len(models) - 1) // 2 == 1319 * 153
    assert not disagree, f"{len(disagree)} pairs where the vote and the scorer disagree, e.g. {disagree[:5]}"


def test_the_extractors_are_the_scorers_readings() -> None:
    assert build("extractor", "numeric") is build("scorer", "numeric").extractor is NUMERIC
    assert build("extractor", "answer") is NUMERIC and build("extractor", "number") is NUMERIC
    assert build("extractor", "exact") is build("extractor", "normalized") is build("scorer", "exact").extractor is EXACT
    assert build("extractor", "choice") is build("scorer", "choice").extractor
