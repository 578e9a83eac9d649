"""Statistics of a run: means with standard errors and bootstrap intervals, paired differences,
latency percentiles. Pure functions over plain lists."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and a bootstrap confidence interval."""

    mean: float
    stderr: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n), scipy's `sem`)."""
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    from scipy.stats import sem  # imported here: `import moa_lab` stays light

    return mean, float(sem(values))


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy's `bootstrap`, seeded so reports are reproducible)."""
    if not values:
        return math.nan, math.nan
    if len(values) < 2:  # every resample of one value is that value
        return float(values[0]), float(values[0])
    import numpy as np  # imported here: `import moa_lab` stays light
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(values, dtype=float),), np.mean, confidence_level=level, n_resamples=resamples,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def estimate(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean, standard error and bootstrap interval (NaN with `resamples=0`: only the mean is wanted);
    NaN values (unscored samples) are left out."""
    values = [v for v in values if not math.isnan(v)]
    if resamples == 0:
        return Estimate(statistics.fmean(values) if values else math.nan, math.nan, math.nan, math.nan, len(values))
    mean, stderr = mean_stderr(values)
    low, high = bootstrap_ci(values, level=level, resamples=resamples, seed=seed)
    return Estimate(mean, stderr, low, high, len(values))


def paired_difference(a: Sequence[float], b: Sequence[float], **kw: float) -> Estimate:
    """Mean of a - b over the same samples, with stderr and a bootstrap interval of the paired differences."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same samples: {len(a)} vs {len(b)}")
    return estimate([x - y for x, y in zip(a, b)], **kw)  # type: ignore[arg-type]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
