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
* :func:`length_controlled_win_rate` re-implements the leaderboard's ``length_controlled_v1`` GLM
  offline (:mod:`moa_lab.scoring._glm`); with instruction difficulties estimated from other systems
  (:mod:`moa_lab.scoring._difficulty`) it is an approximation measured against the leaderboard in
  ``docs/winrate.md`` (`moa-lab analyze winrate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from moa_lab.scoring._glm import LengthControlledFit, length_controlled_fit

__all__ = [
    "LengthControlledFit",
    "OfficialMetricUnavailable",
    "discrete_win_rate",
    "length_controlled_fit",
    "length_controlled_win_rate",
    "official_length_controlled_win_rate",
    "standard_error",
    "win_rate",
]

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


def length_controlled_win_rate(
    preferences: Sequence[float | None],
    model_lengths: Sequence[float],
    reference_lengths: Sequence[float],
    *,
    instruction_difficulty: Sequence[float] | None = None,
) -> float:
    """AlpacaEval 2.0's length-controlled win rate in percent, **approximated** offline: the win rate
    the ``length_controlled_v1`` GLM predicts at equal lengths, fitted with synthesised gamed
    baselines (see :mod:`moa_lab.scoring._glm`). Pass the 805 instruction difficulties (row order;
    :mod:`moa_lab.scoring._difficulty` estimates them) to get within about half a point of the
    leaderboard for most systems (:mod:`moa_lab.scoring._standings`); without them the difficulty term
    is dropped and the error is larger. For alpaca-eval's own value use
    :func:`official_length_controlled_win_rate`.
    """
    return length_controlled_fit(
        preferences, model_lengths, reference_lengths, instruction_difficulty=instruction_difficulty
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
