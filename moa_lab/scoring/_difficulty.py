"""Per-instruction difficulty for the length-controlled GLM, estimated from other systems' verdicts.

alpaca-eval downloads the 805 difficulties d_i from the Hugging Face Hub. Given systems whose
annotations *and* leaderboard weights (theta, beta, phi) are known, each d_i is estimated by
maximising, over those systems' verdicts on instruction i, the likelihood of
``y = logistic(theta + beta * tanh(std delta) + phi * d_i)`` with the weights held fixed, under a
normal prior whose mean and variance are estimated from the data (empirical Bayes: the spread of the
near-unregularised estimates minus their mean sampling variance). The posterior mode is used.

**Alignment.** alpaca-eval looks d up by the annotation's *row position*, not by its instruction: a
system whose file misses rows (e.g. phi-2, 803 of 805) gets the difficulties of the following
instructions from the gap on. The leaderboard's weights for such systems carry that shift (their phi
is about half their peers'), so ``align="position"`` (default) reproduces the leaderboard, and
``align="instruction"`` gives the intended pairing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from moa_lab.scoring._annotations import Verdicts
from moa_lab.scoring._glm import GlmWeights, length_term, preference_labels

Alignment = Literal["position", "instruction"]


@dataclass(frozen=True)
class InstructionDifficulty:
    """Estimated difficulty per instruction, in the order of ``instructions`` (the pool's full file
    order); ``systems`` are the systems it was estimated from; ``prior_mean``/``prior_var`` the
    empirical-Bayes prior."""

    instructions: tuple[str, ...]
    values: tuple[float, ...]
    systems: tuple[str, ...]
    prior_mean: float
    prior_var: float

    def for_verdicts(self, verdicts: Verdicts, align: Alignment = "position") -> list[float]:
        """The difficulty of each of ``verdicts``' rows (see the module docstring for ``align``)."""
        if align == "position":
            if len(verdicts.instructions) > len(self.values):
                raise ValueError(f"{verdicts.system}: more rows than the {len(self.values)} instructions")
            return list(self.values[: len(verdicts.instructions)])
        index = {text: i for i, text in enumerate(self.instructions)}
        missing = [t for t in verdicts.instructions if t not in index]
        if missing:
            raise ValueError(f"{verdicts.system}: {len(missing)} instructions have no difficulty, e.g. {missing[0][:60]!r}")
        return [self.values[index[t]] for t in verdicts.instructions]


def estimate_difficulty(
    pool: Sequence[tuple[Verdicts, GlmWeights]],
    *,
    align: Alignment = "position",
    max_iter: int = 500,
) -> InstructionDifficulty:
    """Estimate the instruction difficulties from systems with known weights (see the module docstring).

    ``pool`` pairs each system's verdicts with its leaderboard weights; leave a system out of the pool
    to score it without using its own weights. Systems whose phi is 0 (the reference) carry no
    information and are skipped.

    Raises:
        ValueError: the pool is empty or has no system with all instructions.
    """
    import numpy as np

    pool = [(v, w) for v, w in pool if w.difficulty != 0.0]
    if not pool:
        raise ValueError("no system with known GLM weights to estimate difficulties from")
    full = max((v for v, _ in pool), key=lambda v: len(v.instructions))
    order = full.instructions
    index = {text: i for i, text in enumerate(order)}
    rows, offsets, slopes, labels = [], [], [], []
    for verdicts, weights in pool:
        y = preference_labels(verdicts.preferences)
        x = length_term(verdicts.model_lengths, verdicts.reference_lengths)
        if align == "position":
            where = np.arange(len(y))
        else:
            where = np.array([index.get(t, -1) for t in verdicts.instructions])
        keep = ~np.isnan(y) & (where >= 0) & (where < len(order))
        rows.append(where[keep])
        offsets.append(weights.model + weights.length * x[keep])
        slopes.append(np.full(int(keep.sum()), weights.difficulty))
        labels.append(y[keep])
    data = (np.concatenate(rows), np.concatenate(offsets), np.concatenate(slopes), np.concatenate(labels))

    rough, info = _posterior_mode(data, len(order), mean=0.0, var=100.0, max_iter=max_iter)
    mean = float(np.median(rough))
    var = max(float(np.var(rough) - np.mean(1.0 / info)), 1e-3)
    values, _ = _posterior_mode(data, len(order), mean=mean, var=var, max_iter=max_iter)
    return InstructionDifficulty(
        instructions=order,
        values=tuple(float(v) for v in values),
        systems=tuple(v.system for v, _ in pool),
        prior_mean=mean,
        prior_var=var,
    )


def _posterior_mode(data: tuple[Any, Any, Any, Any], n: int, *, mean: float, var: float, max_iter: int) -> tuple[Any, Any]:
    """Per-instruction Newton steps (clipped to 1 unit) on the log posterior; returns d and its curvature."""
    import numpy as np
    from scipy.special import expit

    rows, offset, slope, y = data
    d = np.full(n, mean)
    info = np.full(n, 1.0 / var)
    for _ in range(max_iter):
        p = expit(offset + slope * d[rows])
        grad = np.bincount(rows, slope * (y - p), minlength=n) - (d - mean) / var
        info = np.bincount(rows, slope * slope * p * (1.0 - p), minlength=n) + 1.0 / var
        step = np.clip(grad / info, -1.0, 1.0)
        d = d + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return d, info
