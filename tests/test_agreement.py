"""The agreement measure a cascade stops on: vote share and margin of extracted answers, and the
mean pairwise similarity of open-ended ones."""

from __future__ import annotations

import itertools

import pytest

from moa_lab.agents import Vote
from moa_lab.answers import EXACT, NUMERIC, agreement, chrf, similarity_agreement, vote_agreement


def test_share_counts_every_answer_and_an_unreadable_one_agrees_with_none() -> None:
    got = vote_agreement(["Paris", "paris.", "Lyon"], EXACT)
    assert (got.value, got.chosen, got.answers) == (pytest.approx(2 / 3), 0, 3)
    # a blank reply (or a failed proposal, passed as "") is an answer that agrees with nothing
    assert vote_agreement(["7", "", "7", ""], NUMERIC).value == 0.5
    assert vote_agreement(["The answer is 1,200.", "#### 1200", "12"], NUMERIC).value == pytest.approx(2 / 3)


def test_margin_is_the_plurality_lead_over_the_runner_up() -> None:
    assert vote_agreement(["x", "x", "x", "y", "z"], EXACT, margin=True).value == pytest.approx(2 / 5)
    assert vote_agreement(["x", "x", "y", "y"], EXACT, margin=True).value == 0
    assert vote_agreement(["x", "x", "", ""], EXACT, margin=True).value == 0.5  # nobody else: the lead is its share


def test_fewer_than_two_answers_never_agree() -> None:
    assert vote_agreement(["Paris"], EXACT).value == 0 and vote_agreement(["Paris"], EXACT).chosen == 0
    assert vote_agreement([], EXACT).chosen is None
    assert similarity_agreement(["a long answer"]).value == 0
    assert vote_agreement(["", ""], EXACT).value == 0 and vote_agreement(["", ""], EXACT).chosen is None


def test_the_representative_is_the_answer_the_vote_aggregator_picks() -> None:
    vote = Vote(EXACT)
    for texts in itertools.product(["x", "y", ""], repeat=4):
        got, picked = vote_agreement(list(texts), EXACT), vote.choose(list(texts))
        assert got.chosen == (picked[0] if picked else None), texts
        assert got.value == (picked[1] / 4 if picked else 0.0), texts


def test_similarity_is_the_mean_pairwise_chrf_with_the_medoid_as_representative() -> None:
    same = similarity_agreement(["Paris is the capital.", "paris is the capital.", "Paris  is the capital."])
    assert same.value == pytest.approx(1.0) and same.chosen == 0
    texts = ["The sky is blue because of Rayleigh scattering.",
             "Rayleigh scattering makes the sky look blue.",
             "Bananas are yellow."]
    got = similarity_agreement(texts)
    pairs = [chrf(texts[i], texts[j]) for i, j in itertools.combinations(range(3), 2)]
    assert got.value == pytest.approx(sum(pairs) / 3) and 0 < got.value < 1
    assert got.chosen in (0, 1)  # the two answers about scattering are each other's nearest
    assert chrf(texts[0], texts[1]) == pytest.approx(chrf(texts[1], texts[0]))  # β = 1: symmetric
    assert chrf("", "anything") == 0 and similarity_agreement(["", "", "x"]).chosen == 2


def test_a_given_similarity_replaces_chrf_and_is_clipped_to_the_unit_interval() -> None:
    got = similarity_agreement(["a", "b", "c"], lambda x, y: 2.0 if {x, y} == {"a", "b"} else -1.0)
    assert got.value == pytest.approx(1 / 3) and got.chosen == 0


def test_the_measure_is_chosen_by_name() -> None:
    assert agreement(["4", "4", "5"], "share", extract=NUMERIC).value == pytest.approx(2 / 3)
    assert agreement(["4", "4", "5"], "margin", extract=NUMERIC).value == pytest.approx(1 / 3)
    assert agreement(["x y", "x y"], "similarity").value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs an extractor"):
        agreement(["4"], "share")
    with pytest.raises(ValueError, match="measure must be"):
        agreement(["4"], "entropy", extract=NUMERIC)  # type: ignore[arg-type]
