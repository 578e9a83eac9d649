"""The pieces of the length-controlled win rate: the GLM fit, the gamed-baseline regulariser, the
difficulty estimate, the file readers and `moa-lab analyze winrate`, on synthetic data."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit
from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.scoring._annotations import Verdicts, read_glm_weights, read_leaderboard, read_verdicts
from moa_lab.scoring._difficulty import estimate_difficulty
from moa_lab.scoring._glm import GAMED_BASELINES, GlmWeights, fit_fractional_logit, length_controlled_fit, length_term
from moa_lab.scoring._standings import standings, variant_base
from moa_lab.scoring._winrate import length_controlled_win_rate, win_rate

N = 400
RNG = np.random.default_rng(7)
REF_LEN = RNG.integers(300, 3000, N)
DIFFICULTY = RNG.normal(0.0, 1.5, N)


def _system(name: str, w: GlmWeights, ratio: float, rng: np.random.Generator) -> Verdicts:
    """A system whose soft verdicts follow the GLM with weights w, answers about ratio x the reference."""
    lengths = np.maximum(1, (REF_LEN * ratio * rng.lognormal(0.0, 0.3, N))).astype(int)
    x = length_term(lengths, REF_LEN)
    p = expit(w.model + w.length * x + w.difficulty * DIFFICULTY)
    prefs = 1.0 + np.clip(p + rng.normal(0.0, 0.05, N), 0.0, 1.0)
    return Verdicts(name, tuple(f"instruction {i}" for i in range(N)), tuple(float(v) for v in prefs),
                    tuple(int(v) for v in lengths), tuple(int(v) for v in REF_LEN), "reference")


def test_equal_lengths_make_the_lc_win_rate_the_raw_win_rate():
    prefs = [1.0, 1.2, 1.9, 2.0, 1.5, 1.05, 1.7]
    same = [100, 300, 250, 90, 1000, 20, 400]
    for regularize in (True, False):
        fit = length_controlled_fit(prefs, same, same, regularize=regularize)
        assert fit.win_rate == pytest.approx(win_rate(prefs), abs=1e-8)


def test_fractional_logit_matches_a_weighted_duplicated_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(300, 2))
    design = np.column_stack([np.ones(300), x])
    y = expit(design @ np.array([-0.5, 1.0, -2.0]) + RNG.normal(0, 0.3, 300))
    weights = RNG.uniform(0.1, 1.0, 300)
    ours = fit_fractional_logit(design, y, weights)
    reference = LogisticRegression(C=1e10, fit_intercept=False, tol=1e-12, max_iter=10_000)
    reference.fit(np.vstack([design, design]), np.r_[np.ones(300), np.zeros(300)], sample_weight=np.r_[y, 1 - y] * np.r_[weights, weights])
    assert ours == pytest.approx(reference.coef_[0], abs=1e-4)


def test_free_fit_recovers_a_known_glm_with_difficulty():
    truth = GlmWeights(model=-0.8, length=-1.5, difficulty=0.9)
    system = _system("m", truth, 0.9, np.random.default_rng(3))
    fit = length_controlled_fit(system.preferences, system.model_lengths, system.reference_lengths,
                                instruction_difficulty=list(DIFFICULTY), regularize=False)
    assert (fit.model_coef, fit.length_coef, fit.difficulty_coef) == pytest.approx((truth.model, truth.length, truth.difficulty), abs=0.1)
    assert fit.win_rate == pytest.approx(100 * expit(truth.model + truth.difficulty * DIFFICULTY).mean(), abs=1.0)


def test_gamed_baselines_hold_the_length_coefficient_when_every_answer_is_short():
    """Answers all far shorter than the reference's: theta and beta are confounded; the synthesised
    gamed baselines keep beta near theirs, the free fit runs away."""
    truth = GlmWeights(model=-2.0, length=-1.8, difficulty=1.0)
    system = _system("short", truth, 0.03, np.random.default_rng(4))
    args = (system.preferences, system.model_lengths, system.reference_lengths)
    held = length_controlled_fit(*args, instruction_difficulty=list(DIFFICULTY))
    gamed_beta = np.mean([g.length for g in GAMED_BASELINES])
    assert held.regularized and abs(held.length_coef - gamed_beta) < 0.6
    assert held.win_rate == pytest.approx(100 * expit(truth.model + truth.difficulty * DIFFICULTY).mean(), abs=4.0)


def test_difficulty_is_recovered_from_other_systems_weights():
    rng = np.random.default_rng(5)
    pool = []
    for k in range(30):
        w = GlmWeights(model=rng.uniform(-3, 1), length=rng.uniform(-2.2, -1.0), difficulty=rng.uniform(0.6, 1.2))
        pool.append((_system(f"s{k}", w, rng.uniform(0.3, 1.2), rng), w))
    est = estimate_difficulty(pool)
    assert len(est.values) == N and len(est.systems) == 30
    assert np.corrcoef(est.values, DIFFICULTY)[0, 1] > 0.9
    # A held-out system's LC with the estimated difficulties is close to its true LC.
    truth = GlmWeights(model=-1.0, length=-1.7, difficulty=0.9)
    held_out = _system("held-out", truth, 0.6, rng)
    lc = length_controlled_win_rate(held_out.preferences, held_out.model_lengths, held_out.reference_lengths,
                                    instruction_difficulty=est.for_verdicts(held_out))
    assert lc == pytest.approx(100 * expit(truth.model + truth.difficulty * DIFFICULTY).mean(), abs=1.5)


def test_difficulty_lookup_by_position_or_by_instruction():
    w = GlmWeights(-1.0, -1.5, 1.0)
    est = estimate_difficulty([(_system("a", w, 0.8, np.random.default_rng(6)), w)])
    gap = Verdicts("gap", ("instruction 0", "instruction 2"), (1.5, 1.5), (10, 10), (10, 10), "reference")
    assert est.for_verdicts(gap, "position") == list(est.values[:2])  # alpaca-eval's positional lookup
    assert est.for_verdicts(gap, "instruction") == [est.values[0], est.values[2]]
    with pytest.raises(ValueError, match="no difficulty"):
        est.for_verdicts(Verdicts("x", ("unknown",), (1.5,), (1,), (1,), "r"), "instruction")
    with pytest.raises(ValueError, match="no system"):
        estimate_difficulty([])


def test_variant_base():
    assert variant_base("alpaca-7b_concise") == "alpaca-7b"
    assert variant_base("gpt4_0613_verbose") == "gpt4_0613"
    assert variant_base("alpaca-7b") is None


def _write_layout(root: Path) -> list[Path]:
    """Annotation files, a weights CSV and a leaderboard CSV in the shared data layout."""
    rng = np.random.default_rng(8)
    folder = root / "annotations"
    folder.mkdir()
    weights = {f"sys{k}": GlmWeights(rng.uniform(-3, 0), rng.uniform(-2.0, -1.2), rng.uniform(0.7, 1.1)) for k in range(12)}
    paths = []
    for name, w in weights.items():
        v = _system(name, w, rng.uniform(0.3, 1.0), rng)
        rows = [{"instruction": i, "output_1": "r" * rl, "output_2": "m" * ml, "generator_1": "reference", "generator_2": name, "preference": p}
                for i, rl, ml, p in zip(v.instructions, v.reference_lengths, v.model_lengths, v.preferences)]
        path = folder / f"{name}.json.gz"
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            json.dump(rows, fh)
        paths.append(path)
    with open(root / "glm_weights_length_controlled_v1.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["", "np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)"])
        for name, w in weights.items():
            out.writerow([name, w.length, w.difficulty, w.model])
    with open(root / "leaderboard_alpaca_eval_2.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["name", "length_controlled_winrate", "win_rate", "avg_length", "link", "samples", "filter"])
        for name, w in weights.items():
            lc = 100 * expit(w.model + w.difficulty * DIFFICULTY).mean()
            out.writerow([name.upper(), lc, 0.0, 0, "", f"https://x/results/{name}/model_outputs.json", "minimal"])
    return paths


def test_readers_and_standings_leave_each_system_out(tmp_path: Path):
    paths = _write_layout(tmp_path)
    assert read_verdicts(paths[0]).system == "sys0" and len(read_verdicts(paths[0]).preferences) == N
    assert set(read_glm_weights(tmp_path / "glm_weights_length_controlled_v1.csv")) == {f"sys{k}" for k in range(12)}
    assert read_leaderboard(tmp_path / "leaderboard_alpaca_eval_2.csv")["sys3"].name == "SYS3"
    rows = standings(paths[:3])
    assert [r.system for r in rows] == ["sys0", "sys1", "sys2"]
    assert all(r.difficulty_from == 11 for r in rows)  # the system itself is never in its own pool
    assert all(0 < r.lc_win_rate < 100 and "approximate" in r.method for r in rows)
    assert all(r.lc_diff == pytest.approx(r.lc_win_rate - r.leaderboard_lc) for r in rows)
    assert all(not math.isnan(r.standard_error) for r in rows)


def test_analyze_winrate_command_writes_labelled_tables(tmp_path: Path):
    paths = _write_layout(tmp_path)
    md, out = tmp_path / "winrate.md", tmp_path / "winrate.csv"
    result = CliRunner().invoke(app, ["analyze", "winrate", *map(str, paths[:2]), "--markdown", str(md), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "LC≈" in result.output and "within 0.5 points of the leaderboard" in result.output
    assert md.read_text().startswith("LC≈: approximate")
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["system"] for r in table] == ["sys0", "sys1"] and "lc_win_rate_approx" in table[0]
