"""Run statistics: means with standard errors and seeded bootstrap intervals."""

from __future__ import annotations

import math

import pytest

from moa_lab.scoring import bootstrap_ci, estimate, mean_stderr, paired_difference


def test_standard_error_is_the_sample_deviation_over_root_n() -> None:
    mean, stderr = mean_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert stderr == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(mean_stderr([1.0])[1]) and all(math.isnan(v) for v in mean_stderr([]))


def test_bootstrap_interval_is_seeded_brackets_the_mean_and_narrows_with_data() -> None:
    values = [1.0] * 70 + [0.0] * 30
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < 0.7 < high
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(0.7 * 0.3 / 100), rel=0.15)  # the normal interval's width
    wide = bootstrap_ci(values[:10] + values[-10:], seed=3)
    assert wide[1] - wide[0] > high - low
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_estimates_leave_unscored_samples_out_and_pair_differences() -> None:
    est = estimate([1.0, float("nan"), 0.0, 1.0])
    assert est.n == 3 and est.mean == pytest.approx(2 / 3)
    diff = paired_difference([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0])
    assert diff.mean == 0.5 and diff.low <= 0.5 <= diff.high
    with pytest.raises(ValueError, match="same samples"):
        paired_difference([1.0], [1.0, 0.0])
