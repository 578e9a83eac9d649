"""Win rate, its standard error and the length-controlled win rate, against the recorded AlpacaEval data."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import pytest

from moa_lab.scoring._standings import standings
from moa_lab.scoring._winrate import (
    OfficialMetricUnavailable,
    discrete_win_rate,
    length_controlled_fit,
    length_controlled_win_rate,
    official_length_controlled_win_rate,
    standard_error,
    win_rate,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ALPACA = DATA / "alpaca_eval"
ANNOTATIONS = ALPACA / "annotations" / "alpaca-7b.json.gz"
LEADERBOARD = ALPACA / "leaderboard_alpaca_eval_2.csv"

needs_data = pytest.mark.skipif(
    not (ANNOTATIONS.exists() and LEADERBOARD.exists()),
    reason=f"recorded AlpacaEval data not found at {ALPACA} (the shared data folder is absent on this machine)",
)

# alpaca-eval 0.6.6, leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv, row alpaca-7b
# (the shared leaderboard CSV has no standard-error or discrete columns).
ALPACA_7B_STANDARD_ERROR = 0.4870855382635108
ALPACA_7B_DISCRETE_WIN_RATE = 2.298136645962733

@pytest.fixture(scope="module")
def annotations() -> list[dict]:
    with gzip.open(ANNOTATIONS, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def leaderboard_row() -> dict[str, str]:
    with open(LEADERBOARD, newline="", encoding="utf-8") as fh:
        rows = {row["name"]: row for row in csv.DictReader(fh)}
    return rows["Alpaca 7B"]


def _columns(annotations: list[dict]) -> tuple[list[float], list[int], list[int]]:
    return (
        [a["preference"] for a in annotations],
        [len(a["output_2"]) for a in annotations],
        [len(a["output_1"]) for a in annotations],
    )


# --- recorded data ---------------------------------------------------------------------------


@needs_data
def test_win_rate_reproduces_the_leaderboard(annotations, leaderboard_row):
    prefs, _, _ = _columns(annotations)
    assert len(prefs) == 805
    value = win_rate(prefs)
    assert round(value, 4) == 2.5915
    assert value == pytest.approx(float(leaderboard_row["win_rate"]), abs=1e-9)


@needs_data
def test_standard_error_and_discrete_win_rate_match_alpaca_eval(annotations):
    prefs, _, _ = _columns(annotations)
    assert standard_error(prefs) == pytest.approx(ALPACA_7B_STANDARD_ERROR, abs=1e-9)
    assert discrete_win_rate(prefs) == pytest.approx(ALPACA_7B_DISCRETE_WIN_RATE, abs=1e-9)


# Chosen before looking at per-system errors to span the cases: answers far shorter than the
# reference's (alpaca-7b), a file missing rows (phi-2: 803 of 805), an adversarial system (NullModel),
# and a recent system with answers about as long as the reference's (FuseChat-Qwen-2.5-7B-Instruct).
FEW_SYSTEMS = ("alpaca-7b", "phi-2", "NullModel", "FuseChat-Qwen-2.5-7B-Instruct")


@needs_data
def test_lc_win_rate_is_within_half_a_point_of_the_leaderboard_on_a_few_systems():
    """Each system's LC from its own annotations, with difficulties estimated from the other shared
    systems (never its own weights or row): within 0.5 points of the leaderboard."""
    files = [ALPACA / "annotations" / f"{name}.json.gz" for name in FEW_SYSTEMS]
    rows = {r.system: r for r in standings(files)}
    for name in FEW_SYSTEMS:
        row = rows[name]
        assert row.leaderboard_lc is not None and row.difficulty_from >= 40
        assert abs(row.lc_diff) <= 0.5, (name, row.lc_win_rate, row.leaderboard_lc)
        assert row.win_rate == pytest.approx(row.leaderboard_win_rate, abs=1e-4)
    # Alpaca 7B's answers are far shorter than the reference's: controlling for length raises its rate.
    assert rows["alpaca-7b"].lc_win_rate > rows["alpaca-7b"].win_rate


@needs_data
@pytest.mark.filterwarnings("ignore:.*penalty.*:FutureWarning", "ignore:Inconsistent values.*:UserWarning")
def test_our_glm_fit_equals_alpaca_evals_fitter(annotations):
    """Same design (tanh length term, a difficulty term, the model term; no intercept) fitted by
    alpaca-eval's own fit_LogisticRegressionCV without cross-validation and with a negligible L1
    penalty gives the same coefficients and LC as our maximum-likelihood fit. Offline: this part of
    the package needs no Hub data. The difficulty here is synthetic (the real one is on the Hub)."""
    pytest.importorskip("alpaca_eval", reason="alpaca-eval is not installed (optional; `pip install alpaca-eval`)")
    import numpy as np
    import pandas as pd
    from alpaca_eval.metrics.glm_winrate import fit_LogisticRegressionCV, make_dmatrix_for_model

    prefs, model_len, ref_len = _columns(annotations)
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0.0, 1.0, len(prefs)) + 0.5 * np.log(np.asarray(ref_len) / 1000.0)
    ours = length_controlled_fit(prefs, model_len, ref_len, instruction_difficulty=difficulty, regularize=False)

    delta = pd.Series(np.asarray(ref_len) - np.asarray(model_len), dtype=float)
    train = pd.DataFrame(
        {
            "preference": np.asarray(prefs) - 1.0,
            "std_delta_len": delta / delta.std(),
            "instruction_difficulty": difficulty,
            "not_gamed_baseline": True,
        }
    )
    test = train[["instruction_difficulty", "not_gamed_baseline"]].copy()
    test["std_delta_len"] = 0.0
    formula = "np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1"
    xy_train, x_test = make_dmatrix_for_model(train, test, formula=formula)
    model = fit_LogisticRegressionCV(xy_train, "preference", is_ytrue_proba=True, n_splits=0, C=1e8, tol=1e-10)
    coef = dict(zip(x_test.columns, model.coef_[0]))

    assert ours.length_coef == pytest.approx(coef["np.tanh(std_delta_len)"], abs=1e-5)
    assert ours.difficulty_coef == pytest.approx(coef["instruction_difficulty"], abs=1e-5)
    assert ours.model_coef == pytest.approx(coef["not_gamed_baseline.astype(float)"], abs=1e-5)
    assert ours.win_rate == pytest.approx(model.predict_proba(x_test)[:, 1].mean() * 100, abs=1e-4)


@needs_data
def test_official_length_controlled_win_rate(annotations, leaderboard_row):
    """Runs alpaca-eval's own LC when its Hub data is cached; otherwise checks it refuses at once."""
    pytest.importorskip("alpaca_eval", reason="alpaca-eval is not installed (optional; `pip install alpaca-eval`)")
    from alpaca_eval import constants
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(
        "tatsu-lab/alpaca_eval", "df_gamed.csv", repo_type="dataset", cache_dir=constants.DEFAULT_CACHE_DIR
    )
    if not isinstance(cached, str):
        with pytest.raises(OfficialMetricUnavailable, match="not cached"):
            official_length_controlled_win_rate(annotations)
        pytest.skip("alpaca-eval's df_gamed.csv is not in the Hugging Face cache (needs internet once)")
    value = official_length_controlled_win_rate(annotations)
    assert value == pytest.approx(float(leaderboard_row["length_controlled_winrate"]), abs=0.5)


# --- pure behaviour --------------------------------------------------------------------------


def test_win_rate_counts_ties_half_and_drops_missing_verdicts():
    assert win_rate([1.0, 2.0, 1.5, 2.0]) == pytest.approx(62.5)
    assert win_rate([2.0, None, float("nan"), 1.0]) == pytest.approx(50.0)
    assert win_rate([0, 2.0]) == pytest.approx(75.0)  # legacy 0 = draw
    assert math.isnan(win_rate([]))
    assert math.isnan(win_rate([None]))


def test_win_rate_rejects_values_outside_the_scale():
    with pytest.raises(ValueError, match="preference #1"):
        win_rate([1.0, 2.5])


def test_standard_error_is_the_sem_of_the_mean():
    assert standard_error([1.0, 2.0]) == pytest.approx(50.0)  # sd 0.7071 / sqrt(2) * 100
    assert math.isnan(standard_error([2.0]))
    assert discrete_win_rate([1.2, 1.8, 1.5, 1.6]) == pytest.approx(62.5)
