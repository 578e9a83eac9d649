"""What a router does at each λ: route each query, or call one static subset for every query.

Training compares, per λ, per-query routing with the best static subset at the same price by
cross-validation on the training split, and keeps routing only where it wins beyond noise (see
`moa_lab.routing` `fit_operating_points`). The choices are stored under `operating` in router.json;
a selector at any λ follows the choice made at the nearest trained λ, and where that is static it
calls the subset of the training split's front that `static_option` names: the best at routing's
interpolated price there, and at the ends of the λ range the front's ends (so the fallback offers every
price the static front spans, from its cheapest subset to its most accurate)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from moa_lab.core import ConfigError


@dataclass(frozen=True)
class OperatingPoint:
    """The choice at one λ. `routes`: route per query; otherwise call `subset` (router indices, in
    the vote's tie order). The cross-validated accuracy and mean $ per query of routing and of the
    static alternative at routing's price, and routing's paired gain with its standard error, say
    why (fractions of queries; the gain must exceed `z` standard errors for routing to be kept)."""

    lam: float
    routes: bool
    subset: tuple[int, ...]
    routed_accuracy: float
    routed_usd: float
    static_accuracy: float
    static_usd: float
    gain: float
    stderr: float

    def to_dict(self) -> dict[str, Any]:
        """The point as router.json stores it."""
        out = asdict(self)
        out["subset"] = list(self.subset)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperatingPoint:
        """Read a point written by `to_dict`; a malformed one is a ConfigError."""
        try:
            return cls(float(data["lam"]), bool(data["routes"]), tuple(int(j) for j in data["subset"]),
                       *(float(data[k]) for k in ("routed_accuracy", "routed_usd", "static_accuracy", "static_usd",
                                                   "gain", "stderr")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed operating point {dict(data)!r}: {exc}; retrain the router") from None


def nearest_point(points: Sequence[OperatingPoint], lam: float) -> OperatingPoint | None:
    """The point trained at the λ nearest `lam` on a log(1 + λ) scale; None when there are none."""
    if not points:
        return None
    if math.isinf(lam):
        return max(points, key=lambda p: p.lam)
    return min(points, key=lambda p: abs(math.log1p(max(p.lam, 0.0)) - math.log1p(max(lam, 0.0))))


@dataclass(frozen=True)
class StaticOption:
    """A static subset on the training split's cost-accuracy front: its members (tie order), its
    mean $ per query and its vote accuracy there."""

    subset: tuple[int, ...]
    usd: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return {"subset": list(self.subset), "usd": self.usd, "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StaticOption:
        try:
            return cls(tuple(int(j) for j in data["subset"]), float(data["usd"]), float(data["accuracy"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed static option {dict(data)!r}: {exc}; retrain the router") from None


def static_at(front: Sequence[StaticOption], usd: float, slack: float) -> StaticOption:
    """The most accurate option costing at most `usd` × `slack` (the cheapest when none does)."""
    within = [o for o in front if o.usd <= usd * slack * (1 + 1e-9)]
    return max(within, key=lambda o: (o.accuracy, -o.usd)) if within else min(front, key=lambda o: o.usd)


def static_option(points: Sequence[OperatingPoint], front: Sequence[StaticOption], lam: float, slack: float) -> StaticOption:
    """The front option the router calls at `lam` where it does not route: the most accurate within
    the fallback's budget there (`static_at`). Between the trained λ the budget is routing's
    cross-validated $ per query, interpolated (linear in log(1 + λ) and log $), except at λ = 0, where
    price is no object and it is the most accurate option's $; beyond the largest trained λ it falls
    as 1/λ, to the cheapest option at λ = inf. So the fallback offers every price the front spans."""
    return static_at(front, _budget(points, front, lam), slack)


def switch_lambdas(points: Sequence[OperatingPoint], front: Sequence[StaticOption], slack: float) -> list[float]:
    """The λ just either side of every change of `static_option`'s choice, with 0, inf and the trained
    λ: sweeping them meets every front option the fallback calls at some λ (an option enters where
    the budget times `slack` reaches its $)."""
    xs, ys = _budget_knots(points, front)
    top = max(p.lam for p in points)
    edges = [math.log(max(o.usd / slack, 1e-15)) for o in front]
    out = {0.0, math.inf, *(p.lam for p in points)}
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y1 != y0:
            out |= {math.expm1(x0 + (y - y0) / (y1 - y0) * (x1 - x0)) for y in edges if min(y0, y1) <= y <= max(y0, y1)}
    if top > 0:
        out |= {top * math.exp(ys[-1] - y) for y in edges if y < ys[-1]}
    return sorted({0.0, math.inf} | {lam * f for lam in out if 0 < lam < math.inf for f in (1 - 1e-6, 1.0, 1 + 1e-6)})


def _budget(points: Sequence[OperatingPoint], front: Sequence[StaticOption], lam: float) -> float:
    """The static fallback's budget at `lam` (see `static_option`)."""
    xs, ys = _budget_knots(points, front)
    top = max(p.lam for p in points)
    if lam > top > 0:
        return math.exp(ys[-1]) * top / lam
    return math.exp(float(np.interp(math.log1p(max(lam, 0.0)), xs, ys)))


def _budget_knots(points: Sequence[OperatingPoint], front: Sequence[StaticOption]) -> tuple[list[float], list[float]]:
    """(log(1 + λ), log $) of the static fallback's budget at each trained λ (see `static_option`)."""
    most_accurate = max(front, key=lambda o: (o.accuracy, -o.usd)).usd
    ordered = sorted(points, key=lambda p: p.lam)
    xs = [math.log1p(max(p.lam, 0.0)) for p in ordered]
    ys = [math.log(max(max(p.routed_usd, most_accurate) if p.lam <= 0 else p.routed_usd, 1e-15)) for p in ordered]
    return xs, ys
