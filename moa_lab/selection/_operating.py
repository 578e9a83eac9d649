"""What a router does at each λ: route each query, or call one static subset for every query.

Training compares, per λ, per-query routing with the best static subset at the same price by
cross-validation on the training split, and keeps routing only where it wins beyond noise (see
`moa_lab.routing` `fit_operating_points`). The choices are stored under `operating` in router.json;
a selector at any λ follows the choice made at the nearest trained λ, and where that is static it
calls the best subset of the training split's front at routing's interpolated price there."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
    return min(points, key=lambda p: abs(math.log1p(max(p.lam, 0.0)) - math.log1p(max(lam, 0.0))))


def routed_usd(points: Sequence[OperatingPoint], lam: float) -> float:
    """Routing's cross-validated $ per query at `lam`, interpolated between the trained λ (linear in
    log(1 + λ) and log $)."""
    ordered = sorted(points, key=lambda p: p.lam)
    xs = [math.log1p(max(p.lam, 0.0)) for p in ordered]
    ys = [math.log(max(p.routed_usd, 1e-15)) for p in ordered]
    x = math.log1p(max(lam, 0.0))
    if x <= xs[0]:
        return math.exp(ys[0])
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1)
    return math.exp(ys[-1])


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
