"""AlpacaEval win-rate math: the raw win rate, its standard error, and the length-controlled win rate.

Pure functions over plain sequences. numpy is imported inside the functions (``import moa_lab`` stays
light); the optional ``alpaca-eval`` package is only touched by :func:`official_length_controlled_win_rate`.

Conventions (AlpacaEval's): a *preference* is a number in [1, 2] saying how much the judge prefers the
model over the reference on one instruction: 1 = the reference (``output_1``) wins, 2 = the model
(``output_2``) wins, 1.5 = a tie. Weighted judges (``weighted_alpaca_eval_gpt4_turbo``, the judge of the
AlpacaEval 2.0 leaderboard) give ``2 - P(judge says output_1)``, so most values are fractional.
The legacy encoding 0 means a draw and is read as 1.5.

Measured on the recorded Alpaca 7B annotations (``../shared/data/alpaca_eval/annotations/alpaca-7b.json.gz``,
805 GPT-4-Turbo verdicts against ``gpt4_1106_preview``), leaderboard values in brackets:

* :func:`win_rate` = 2.591450540223603 [2.591450540223603], :func:`standard_error` = 0.48709
  [0.4870855382635108 in alpaca-eval 0.6.6's leaderboard file], :func:`discrete_win_rate` =
  2.298136645962733 [2.298136645962733]: identical.
* :func:`length_controlled_win_rate` (default: length coefficient fixed at
  :data:`GAMED_BASELINE_LENGTH_COEF`, no instruction difficulty) = 7.391 [5.875487163278986]:
  1.52 points high. With the length coefficient fitted freely (``length_coef=None``; alpaca-eval's
  ``length_controlled_minimal`` formula) = 19.83: the fit extrapolates from a model whose answers are
  5x shorter than the reference's (396 vs 2049 characters) and badly overshoots. See
  :func:`length_controlled_fit` for why, and for how to get the official value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Length coefficient the official AlpacaEval 2.0 GLM fitted for its two *gamed* baselines (the
#: reference ``gpt4_1106_preview`` prompted to be verbose: -1.5835, and to be concise: -1.6425; file
#: ``src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1/
#: baseline_gpt4_1106_preview.csv`` of tatsu-lab/alpaca_eval). Those baselines have the reference's
#: content at another length, so their coefficient is the method's estimate of the pure effect of
#: length on this judge; the official fit shares it with every model through a regularising term.
#: The mean of the two is used here as a fixed prior when no gamed-baseline annotations are at hand.
GAMED_BASELINE_LENGTH_COEF: float = -1.6130

#: The Hub dataset file the official length-controlled win rate downloads (difficulties, gamed baselines).
OFFICIAL_HUB_REPO = "tatsu-lab/alpaca_eval"
OFFICIAL_HUB_FILE = "df_gamed.csv"


class OfficialMetricUnavailable(RuntimeError):
    """The official alpaca-eval implementation cannot run here (package missing or its Hub data not cached)."""


def _valid_preferences(preferences: Sequence[float | None]) -> list[float]:
    """Preferences as AlpacaEval counts them: None/NaN dropped, legacy 0 read as 1.5 (a draw).

    AlpacaEval drops NaN and any value outside [1, 2] (it logs "drop n outputs that are not
    preferences"). A value outside [1, 2] here is a bug in the caller, so it raises instead.
    """
    out: list[float] = []
    for i, p in enumerate(preferences):
        if p is None:
            continue
        value = float(p)
        if math.isnan(value):
            continue
        if value == 0.0:
            value = 1.5
        if not 1.0 <= value <= 2.0:
            raise ValueError(f"preference #{i} is {p!r}; AlpacaEval preferences are in [1, 2] (0 or 1.5 = draw)")
        out.append(value)
    return out


def win_rate(preferences: Sequence[float | None]) -> float:
    """AlpacaEval's win rate of the model over the reference, in percent.

    ``mean(preference - 1) * 100`` over the valid preferences: a tie counts half, a weighted judge's
    fractional preference counts fractionally. ``None`` and NaN (the judge gave no usable verdict) are
    dropped from numerator and denominator alike, as in ``alpaca_eval.metrics.get_winrate``; legacy 0
    counts as a draw. Reproduces the leaderboard's 2.591450540223603 for Alpaca 7B from its
    annotations' ``preference`` field. Returns NaN when no preference is valid.
    """
    valid = _valid_preferences(preferences)
    if not valid:
        return math.nan
    return math.fsum(p - 1.0 for p in valid) / len(valid) * 100.0


def standard_error(preferences: Sequence[float | None]) -> float:
    """Standard error of :func:`win_rate`, in percentage points.

    The standard error of the mean of ``preference - 1`` (sample standard deviation, ddof = 1, over
    sqrt(n): scipy's ``sem``) times 100, over the same valid preferences as :func:`win_rate` (pandas
    ``Series.sem``, as AlpacaEval computes it). NaN with fewer than two valid preferences.
    """
    valid = _valid_preferences(preferences)
    if len(valid) < 2:
        return math.nan
    from scipy.stats import sem

    return float(sem(valid)) * 100.0


def discrete_win_rate(preferences: Sequence[float | None]) -> float:
    """AlpacaEval's ``discrete_win_rate``: each verdict rounded to a win (1), loss (0) or draw (1/2).

    A preference above 1.5 is a win, below 1.5 a loss, exactly 1.5 a draw. Percent; NaN when empty.
    """
    valid = _valid_preferences(preferences)
    if not valid:
        return math.nan
    score = sum(1.0 if p > 1.5 else 0.0 if p < 1.5 else 0.5 for p in valid)
    return score / len(valid) * 100.0


@dataclass(frozen=True)
class LengthControlledFit:
    """A fitted length-controlled GLM (see :func:`length_controlled_fit`).

    ``win_rate`` is the length-controlled win rate in percent. ``model_coef`` (theta) is the model's
    term, ``length_coef`` (beta) the coefficient of ``tanh(std-normalised (reference - model) length
    difference)`` (negative: the judge punishes the shorter answer), ``difficulty_coef`` (phi) the
    coefficient of the instruction difficulty (None when no difficulty was given). ``length_fixed``
    says whether beta was fixed rather than fitted. ``n_fit`` is the number of annotations fitted.
    """

    win_rate: float
    model_coef: float
    length_coef: float
    difficulty_coef: float | None
    length_fixed: bool
    n_fit: int


def length_controlled_fit(
    preferences: Sequence[float | None],
    model_lengths: Sequence[float],
    reference_lengths: Sequence[float],
    *,
    instruction_difficulty: Sequence[float] | None = None,
    length_coef: float | None = GAMED_BASELINE_LENGTH_COEF,
) -> LengthControlledFit:
    """Fit AlpacaEval 2.0's length-controlled GLM to one model's annotations.

    **The official method** (``alpaca_eval.metrics.glm_winrate``, GLM ``length_controlled_v1``; Dubois et
    al. 2024, "Length-Controlled AlpacaEval"). For the model m against the reference b on instruction
    i, with ``y_i = preference_i - 1`` in [0, 1] used as a soft label (a fractional logistic
    regression), it fits::

        logit P(m beats b on i) = theta_m + beta_m * tanh(delta_i / sd(delta)) + phi_m * d_i

    where ``delta_i = len(reference output) - len(model output)`` in characters, ``sd`` is the sample
    standard deviation of delta over the model's annotations, and ``d_i`` is a per-instruction
    difficulty that alpaca-eval fitted once across many leaderboard models and downloads
    (``instruction_difficulty`` column of ``df_gamed.csv`` on the Hub). The fit is regularised towards
    the two *gamed* baselines (the reference made verbose / concise; their annotations are in
    ``df_gamed.csv`` with weight 0.2/2 each; they share beta and phi with the model but have no theta),
    and uses sklearn's ``LogisticRegressionCV`` with an L1 penalty (liblinear, no intercept, C chosen
    by 5-fold cross-validation grouped by annotation). The length-controlled win rate is the model's
    predicted win rate with the length term set to 0 (equal lengths)::

        LC = 100 * mean_i logistic(theta_m + phi_m * d_i)

    **What this function does.** The same model and the same prediction, fitted by plain maximum
    likelihood (Newton's method on the fractional-logit log-likelihood; no L1 penalty, no
    cross-validation). Annotations whose preference is None/NaN are left out of the fit but kept in
    the average, as in alpaca-eval. Two documented simplifications, because neither the instruction
    difficulties nor the gamed-baseline annotations ship with one model's annotations and both are
    only on the Hub:

    1. ``instruction_difficulty=None`` drops the ``phi * d_i`` term (so LC = logistic(theta)). Pass
       alpaca-eval's 805 difficulties (instruction order) to restore it.
    2. ``length_coef`` fixes beta instead of fitting it (default :data:`GAMED_BASELINE_LENGTH_COEF`,
       the official fit's coefficient for the gamed baselines: the limit of the official regulariser
       at full strength). ``length_coef=None`` fits beta freely, which with no difficulty term is
       alpaca-eval's ``length_controlled_minimal`` GLM and with one is ``length_controlled_noreg``.

    With one model's annotations beta and theta are nearly confounded when the model's lengths are
    far from the reference's (every delta has the same sign), so fitting beta freely can extrapolate
    wildly; hence the fixed default. On the recorded Alpaca 7B annotations (leaderboard LC
    5.875487163278986, raw win rate 2.5915):

    ========================================  =========  =================
    variant                                   LC (%)     minus leaderboard
    ========================================  =========  =================
    default (beta fixed at -1.613, no d)      7.39       +1.52
    beta fixed at -2.2068 (official Alpaca    9.93       +4.06
    7B beta; the missing d term matters)
    ``length_coef=None`` (free beta, no d)    19.83      +13.96
    ========================================  =========  =================

    So, with no difficulty term, expect a couple of points of error for models whose answers are
    much shorter or longer than the reference's, less when lengths are similar (the length term
    then barely moves the prediction). For the official number use
    :func:`official_length_controlled_win_rate` (needs the Hub data once).

    Args:
        preferences: per-instruction preferences in [1, 2] (None/NaN: no verdict; 0: legacy draw).
        model_lengths: length of each model output (characters, ``len(output)``, as alpaca-eval).
        reference_lengths: length of each reference output, same order.
        instruction_difficulty: optional per-instruction difficulty d_i, same order.
        length_coef: fixed beta, or None to fit it.

    Raises:
        ValueError: on mismatched lengths, no valid preference, or a preference outside [1, 2].
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

    raw = np.array([math.nan if p is None else float(p) for p in preferences], dtype=float)
    raw[raw == 0.0] = 1.5  # legacy draw
    keep = ~np.isnan(raw)
    if not keep.any():
        raise ValueError("no valid preference to fit")
    bad = keep & ((raw < 1.0) | (raw > 2.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"preference #{i} is {raw[i]!r}; AlpacaEval preferences are in [1, 2]")
    y = raw - 1.0

    delta = np.asarray(reference_lengths, dtype=float) - np.asarray(model_lengths, dtype=float)
    sd = float(np.std(delta, ddof=1)) if n > 1 else 0.0
    length_term = np.tanh(delta / sd) if sd > 0 else np.zeros(n)

    columns = [np.ones(n)]
    if instruction_difficulty is not None:
        columns.append(np.asarray(instruction_difficulty, dtype=float))
    fit_length = length_coef is None and sd > 0
    if fit_length:
        columns.append(length_term)
    design = np.column_stack(columns)
    offset = np.zeros(n) if fit_length or length_coef is None else float(length_coef) * length_term

    coef = _fit_fractional_logit(design[keep], y[keep], offset[keep])

    theta = float(coef[0])
    phi = float(coef[1]) if instruction_difficulty is not None else None
    if fit_length:
        beta = float(coef[-1])
    else:
        beta = 0.0 if length_coef is None else float(length_coef)

    no_length = theta + (phi * np.asarray(instruction_difficulty, dtype=float) if phi is not None else 0.0)
    predicted = expit(np.broadcast_to(no_length, (n,)))
    return LengthControlledFit(
        win_rate=float(np.mean(predicted)) * 100.0,
        model_coef=theta,
        length_coef=beta,
        difficulty_coef=phi,
        length_fixed=not fit_length,
        n_fit=int(keep.sum()),
    )


def length_controlled_win_rate(
    preferences: Sequence[float | None],
    model_lengths: Sequence[float],
    reference_lengths: Sequence[float],
    *,
    instruction_difficulty: Sequence[float] | None = None,
    length_coef: float | None = GAMED_BASELINE_LENGTH_COEF,
) -> float:
    """AlpacaEval 2.0's length-controlled win rate in percent: the win rate the length-controlled GLM
    predicts if the model's answers were as long as the reference's.

    Our own implementation; see :func:`length_controlled_fit` for the model, the two documented
    simplifications (no instruction difficulty unless given; length coefficient fixed at
    :data:`GAMED_BASELINE_LENGTH_COEF` unless ``length_coef=None``) and the measured gap to the
    leaderboard (Alpaca 7B: 7.39 here vs 5.875 official, +1.52 points). For the official value use
    :func:`official_length_controlled_win_rate`.
    """
    return length_controlled_fit(
        preferences,
        model_lengths,
        reference_lengths,
        instruction_difficulty=instruction_difficulty,
        length_coef=length_coef,
    ).win_rate


def official_length_controlled_win_rate(
    annotations: Sequence[Mapping[str, Any]],
    *,
    allow_download: bool = False,
) -> float:
    """The official length-controlled win rate, computed by the ``alpaca-eval`` package when available.

    A thin wrapper over ``alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate`` (GLM
    ``length_controlled_v1``). ``annotations`` are AlpacaEval annotation records of one model against
    one reference: ``instruction``, ``output_1`` (reference), ``output_2`` (model), ``generator_1``,
    ``generator_2``, ``preference``, and optionally ``index`` (the instruction's position in the 805
    AlpacaEval instructions; defaults to the record's position, which is right for a full run in the
    standard order).

    alpaca-eval (checked with 0.6.6) imports offline, and its raw win rate runs offline, but this
    metric downloads ``df_gamed.csv`` (instruction difficulties and gamed-baseline annotations) from
    the Hugging Face Hub. Unless ``allow_download`` is true, the call therefore refuses to start when
    that file is not in the Hub cache (offline, an attempted download spends about 25 s in retries
    before failing). Set ``HF_HUB_OFFLINE=1`` to stop even the freshness check on a cached file.
    Side effect of the package: it calls ``sklearn.set_config(enable_metadata_routing=True)``.

    Raises:
        OfficialMetricUnavailable: alpaca-eval is not installed, its Hub data is not cached (and
            ``allow_download`` is false), or the download failed.
    """
    try:
        import pandas as pd
        from alpaca_eval import constants
        from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate
    except ImportError as exc:  # optional dependency
        raise OfficialMetricUnavailable(f"alpaca-eval is not importable ({exc}); `pip install alpaca-eval`") from exc

    if not allow_download:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(
            OFFICIAL_HUB_REPO, OFFICIAL_HUB_FILE, repo_type="dataset", cache_dir=constants.DEFAULT_CACHE_DIR
        )
        if not isinstance(cached, str):
            raise OfficialMetricUnavailable(
                f"{OFFICIAL_HUB_FILE} of the Hub dataset {OFFICIAL_HUB_REPO} is not cached; "
                "pass allow_download=True on a machine with internet access"
            )

    frame = pd.DataFrame([dict(record) for record in annotations])
    if "index" not in frame.columns:
        frame["index"] = range(len(frame))
    try:
        metrics = get_length_controlled_winrate(frame, save_weights_dir=None, is_warn_extreme_changes=False)
    except Exception as exc:  # network and Hub errors come in many types
        if type(exc).__module__.startswith(("huggingface_hub", "requests", "httpx", "urllib3")):
            raise OfficialMetricUnavailable(f"alpaca-eval could not fetch its Hub data: {exc}") from exc
        raise
    return float(metrics["length_controlled_winrate"])


def _fit_fractional_logit(design: Any, y: Any, offset: Any, *, max_iter: int = 200, tol: float = 1e-10) -> Any:
    """Maximum-likelihood coefficients of ``logit E[y] = design @ w + offset`` for soft labels y in [0, 1].

    Newton's method with step halving on the Bernoulli log-likelihood with fractional targets (the
    loss alpaca-eval optimises by duplicating each row with weights y and 1 - y). A tiny ridge
    (1e-9) keeps the Hessian invertible; it does not move the estimate measurably.
    """
    import numpy as np
    from scipy.special import expit

    def loglik(w: Any) -> float:
        z = design @ w + offset
        return float(np.sum(-y * np.logaddexp(0.0, -z) - (1.0 - y) * np.logaddexp(0.0, z)))

    w = np.zeros(design.shape[1])
    current = loglik(w)
    ridge = 1e-9 * np.eye(design.shape[1])
    for _ in range(max_iter):
        mu = expit(design @ w + offset)
        grad = design.T @ (y - mu)
        hess = design.T @ (design * (mu * (1.0 - mu))[:, None]) + ridge
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
