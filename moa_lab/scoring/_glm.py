"""AlpacaEval 2.0's length-controlled GLM (``length_controlled_v1``), re-implemented offline.

For a model m against the reference b on instruction i, with the soft label ``y_i = preference_i - 1``::

    logit P(m beats b on i) = theta + beta * tanh(delta_i / sd(delta)) + phi * d_i

``delta_i = len(reference output) - len(model output)`` in characters, ``sd`` the sample standard
deviation of delta over the model's rows, ``d_i`` the instruction's difficulty. The length-controlled
win rate is ``100 * mean_i logistic(theta + phi * d_i)``: the predicted win rate at equal lengths.

The official fit (alpaca-eval's ``metrics/glm_winrate.py``) adds the annotations of two *gamed*
baselines, the reference prompted to be verbose and to be concise, with weight 0.2/2 per row; they
share beta and phi with the model but have no theta, so they pull beta and phi toward the pure
effect of length. Those annotations are only on the Hugging Face Hub (``df_gamed.csv``). Here they
are **synthesised**: one row per model row and per gamed baseline, labelled with that baseline's
published (beta, phi) and no intercept (:data:`GAMED_BASELINES`), at length term
``-/+ tanh(reference length / sd(reference lengths))`` (the verbose / concise answer as a fixed
multiple of the reference's length). The official L1 penalty with cross-validated strength is left
out: refitting 12 leaderboard systems with sklearn's ``LogisticRegressionCV`` exactly as alpaca-eval
configures it moved the LC by at most 0.09 points. So every value here is an approximation of the
leaderboard's; :mod:`moa_lab.scoring._standings` measures how close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GlmWeights:
    """One system's fitted ``length_controlled_v1`` weights: ``model`` (theta, the column
    ``not_gamed_baseline.astype(float)``), ``length`` (beta, ``np.tanh(std_delta_len)``) and
    ``difficulty`` (phi, ``instruction_difficulty``)."""

    model: float
    length: float
    difficulty: float


#: The official fit's weights for the two gamed baselines (``gpt4_1106_preview_verbose`` and
#: ``gpt4_1106_preview_concise``; judge ``weighted_alpaca_eval_gpt4_turbo``, reference
#: ``gpt4_1106_preview``; alpaca-eval's ``weights/.../length_controlled_v1/baseline_gpt4_1106_preview.csv``
#: and the shared ``glm_weights_length_controlled_v1.csv``).
GAMED_BASELINES: tuple[GlmWeights, GlmWeights] = (
    GlmWeights(model=0.1923534665807022, length=-1.5835274219761557, difficulty=0.8334888457867451),
    GlmWeights(model=-0.3182055425894927, length=-1.6424856171097677, difficulty=0.6835779026468267),
)

#: alpaca-eval's ``regularize_to_baseline_lambda``: the total weight of one gamed row (split over two).
GAMED_WEIGHT = 0.2


@dataclass(frozen=True)
class LengthControlledFit:
    """A fitted length-controlled GLM. ``win_rate`` is the LC win rate in percent; ``model_coef``
    (theta), ``length_coef`` (beta) and ``difficulty_coef`` (phi; None without difficulties) are the
    coefficients; ``n_fit`` the number of annotations with a preference; ``regularized`` whether the
    synthesised gamed baselines took part."""

    win_rate: float
    model_coef: float
    length_coef: float
    difficulty_coef: float | None
    n_fit: int
    regularized: bool

    @property
    def weights(self) -> GlmWeights:
        """The coefficients as :class:`GlmWeights` (phi 0 when no difficulty was used)."""
        return GlmWeights(self.model_coef, self.length_coef, self.difficulty_coef or 0.0)


def length_term(model_lengths: Sequence[float], reference_lengths: Sequence[float]) -> Any:
    """``tanh(delta / sd(delta))`` with ``delta = reference - model`` length (zeros when sd is 0)."""
    import numpy as np

    delta = np.asarray(reference_lengths, dtype=float) - np.asarray(model_lengths, dtype=float)
    sd = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    return np.tanh(delta / sd) if sd > 0 else np.zeros(len(delta))


def preference_labels(preferences: Sequence[float | None]) -> Any:
    """Soft labels ``preference - 1`` in [0, 1], NaN for a missing verdict, legacy 0 read as a draw."""
    import numpy as np

    raw = np.array([math.nan if p is None else float(p) for p in preferences], dtype=float)
    raw[raw == 0.0] = 1.5
    bad = ~np.isnan(raw) & ((raw < 1.0) | (raw > 2.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"preference #{i} is {raw[i]!r}; AlpacaEval preferences are in [1, 2]")
    return raw - 1.0


def length_controlled_fit(
    preferences: Sequence[float | None],
    model_lengths: Sequence[float],
    reference_lengths: Sequence[float],
    *,
    instruction_difficulty: Sequence[float] | None = None,
    regularize: bool = True,
) -> LengthControlledFit:
    """Fit the length-controlled GLM to one model's annotations (see the module docstring).

    ``instruction_difficulty`` gives d_i per row (same order); without it the difficulty term is
    dropped and the result is further from the leaderboard's. ``regularize=False`` leaves out the
    synthesised gamed baselines (a free length coefficient: alpaca-eval's ``length_controlled_noreg``,
    or ``length_controlled_minimal`` without difficulties), which extrapolates badly when every answer
    is shorter (or longer) than the reference's. Rows with no preference are left out of the fit but
    kept in the average, as in alpaca-eval.

    Raises:
        ValueError: mismatched lengths, no valid preference, or a preference outside [1, 2].
    """
    import numpy as np
    from scipy.special import expit

    n = len(preferences)
    if len(model_lengths) != n or len(reference_lengths) != n:
        raise ValueError(
            f"preferences, model_lengths and reference_lengths need one value per instruction: "
            f"{n}, {len(model_lengths)}, {len(reference_lengths)}"
        )
    if instruction_difficulty is not None and len(instruction_difficulty) != n:
        raise ValueError(f"instruction_difficulty has {len(instruction_difficulty)} values for {n} preferences")
    y = preference_labels(preferences)
    keep = ~np.isnan(y)
    if not keep.any():
        raise ValueError("no valid preference to fit")

    x = length_term(model_lengths, reference_lengths)
    d = None if instruction_difficulty is None else np.asarray(instruction_difficulty, dtype=float)
    columns = [np.ones(n), x] + ([] if d is None else [d])
    design, labels, weights = np.column_stack(columns)[keep], y[keep], np.ones(int(keep.sum()))
    if regularize:
        gamed = _gamed_rows(np.asarray(reference_lengths, dtype=float), d)
        design = np.vstack([design, gamed[0]])
        labels = np.concatenate([labels, gamed[1]])
        weights = np.concatenate([weights, gamed[2]])
    coef = fit_fractional_logit(design, labels, weights)
    theta, beta = float(coef[0]), float(coef[1])
    phi = None if d is None else float(coef[2])
    at_equal_length = theta + (0.0 if d is None else phi * d)
    return LengthControlledFit(
        win_rate=float(np.mean(expit(np.broadcast_to(at_equal_length, (n,))))) * 100.0,
        model_coef=theta,
        length_coef=beta,
        difficulty_coef=phi,
        n_fit=int(keep.sum()),
        regularized=regularize,
    )


def _gamed_rows(reference_lengths: Any, difficulty: Any | None) -> tuple[Any, Any, Any]:
    """Design, soft labels and weights of the synthesised gamed-baseline rows (no theta column)."""
    import numpy as np
    from scipy.special import expit

    n = len(reference_lengths)
    sd = float(np.std(reference_lengths, ddof=1)) if n > 1 else 0.0
    shape = np.tanh(reference_lengths / sd) if sd > 0 else np.zeros(n)
    blocks, labels = [], []
    for gamed, sign in zip(GAMED_BASELINES, (-1.0, 1.0)):  # verbose: longer than the reference
        x = sign * shape
        cols = [np.zeros(n), x] + ([] if difficulty is None else [difficulty])
        blocks.append(np.column_stack(cols))
        z = gamed.length * x + (0.0 if difficulty is None else gamed.difficulty * difficulty)
        labels.append(expit(z))
    weight = GAMED_WEIGHT / len(GAMED_BASELINES)
    return np.vstack(blocks), np.concatenate(labels), np.full(n * len(GAMED_BASELINES), weight)


def fit_fractional_logit(design: Any, y: Any, weights: Any | None = None, *, max_iter: int = 200, tol: float = 1e-10) -> Any:
    """Maximum-likelihood ``w`` of ``logit E[y] = design @ w`` for soft labels y in [0, 1] and row weights.

    Newton's method with step halving on the weighted Bernoulli log-likelihood with fractional targets
    (the loss alpaca-eval optimises by duplicating each row with weights y and 1 - y). A tiny ridge
    (1e-9) keeps the Hessian invertible without moving the estimate measurably.
    """
    import numpy as np
    from scipy.special import expit

    w_row = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)

    def loglik(w: Any) -> float:
        z = design @ w
        return float(np.sum(w_row * (-y * np.logaddexp(0.0, -z) - (1.0 - y) * np.logaddexp(0.0, z))))

    w = np.zeros(design.shape[1])
    current = loglik(w)
    ridge = 1e-9 * np.eye(design.shape[1])
    for _ in range(max_iter):
        mu = expit(design @ w)
        grad = design.T @ (w_row * (y - mu))
        hess = design.T @ (design * (w_row * mu * (1.0 - mu))[:, None]) + ridge
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while True:
            candidate = w + scale * step
            value = loglik(candidate)
            if value >= current - 1e-12 or scale < 1e-8:
                break
            scale /= 2.0
        w, previous, current = candidate, current, value
        if np.max(np.abs(scale * step)) < tol or abs(current - previous) < tol * (1.0 + abs(current)):
            break
    return w
