"""Quality against cost (paper Fig. 5): list-price $, FLOPs, tokens and latency per query, one point
per run, with the Pareto front (cheaper and better) and the area it dominates.

Quality is the run's mean score with its CI, or an external number (a leaderboard CSV column)
where the runs were not scored (AlpacaEval replay without a judge).
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from moa_lab.analysis._runs import Analysis, clean, figure, models_of
from moa_lab.core import ConfigError
from moa_lab.scoring import estimate, percentile
from moa_lab.tracking import RunLog

AXES = (("usd", "list-price $ per query"), ("tflops", "TFLOPs per query"), ("tokens", "tokens per query"),
        ("latency_s", "critical-path latency p50 (s)"))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def external_quality(path: Path, column: str, runs: Sequence[RunLog], name_column: str = "name",
                     aliases: Mapping[str, str] | None = None) -> dict[str, tuple[str, float]]:
    """Per run label, (the CSV row's name, its `column`): the row `aliases[label]` names, else
    matched by the run's label or its one model ignoring case and punctuation, else the closest
    name (printed by the CLI, so a wrong match shows)."""
    with path.open(encoding="utf-8") as fh:
        table = {row[name_column]: row for row in csv.DictReader(fh)}
    if not table:
        raise ConfigError(f"{path}: empty CSV")
    if column not in next(iter(table.values())):
        raise ConfigError(f"{path}: no column {column!r}")
    keys = {_key(n): n for n in table}
    out: dict[str, tuple[str, float]] = {}
    for run in runs:
        candidates = [run.header.label] + [m.split("/")[-1] for m in models_of(run)]
        exact = (aliases or {}).get(run.header.label) or next((keys[_key(c)] for c in candidates if _key(c) in keys), None)
        close = [difflib.get_close_matches(_key(c), list(keys), n=1, cutoff=0.75) for c in candidates]
        name = exact or next((keys[c[0]] for c in close if c), None)
        if name is not None and name not in table:
            raise ConfigError(f"{path}: no row named {name!r}")
        if name is not None and table[name][column]:
            out[run.header.label] = (name, float(table[name][column]))
    return out


def front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points (lower x, higher quality), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    best, out = -math.inf, []
    for i in order:
        if points[i][1] > best:
            out.append(i)
            best = points[i][1]
    return out


def front_area(points: Sequence[tuple[float, float]], *, log_x: bool = True) -> float:
    """The area the front dominates up to the worst point (largest x, lowest quality), with x in
    log10 when `log_x`: larger is a better trade-off set."""
    xs = [math.log10(x) if log_x else x for x, _ in points]
    ref_x, ref_q = max(xs), min(q for _, q in points)
    idx = front(list(zip(xs, (q for _, q in points))))
    edges = [xs[i] for i in idx[1:]] + [ref_x]
    return sum((edges[k] - xs[i]) * (points[i][1] - ref_q) for k, i in enumerate(idx))


def cost(runs: Sequence[RunLog], *, external: Mapping[str, tuple[str, float]] | None = None, quality_name: str = "quality") -> Analysis:
    """One row per run (quality, CI, $, FLOPs, tokens, latency per query) and a four-panel figure."""
    rows: list[dict[str, object]] = []
    for run in runs:
        recs = run.records
        if external is not None:
            if run.header.label not in external:
                continue
            source, q = external[run.header.label]
            low = high = math.nan
        else:
            scores = [r.score for r in recs if r.score is not None]
            if not scores:
                continue
            est = estimate(scores)
            source, q, low, high = "score", est.mean, est.low, est.high
        n = max(1, len(recs))
        # FLOPs need every model's parameter count: a partial sum would look cheaper than it is
        counted = all(c.cost.flops > 0 for r in recs for c in r.calls if c.error is None and c.usage.output_tokens)
        rows.append({"run": run.header.label, "quality": clean(q), "ci_low": clean(low), "ci_high": clean(high),
                     "quality_source": source, "samples": len(recs),
                     "usd": sum(r.cost.list_usd for r in recs) / n, "tflops": sum(r.cost.flops for r in recs) / n / 1e12 if counted else 0.0,
                     "tokens": sum(r.usage.input_tokens + r.usage.output_tokens for r in recs) / n,
                     "latency_s": percentile([r.critical_path_s for r in recs], 50)})
    if not rows:
        raise ConfigError("cost: no run has a quality (score the runs, or give --quality-csv for them)")
    fig, axes = figure(5.6, 4.4, cols=2, rows=2)
    notes = []
    for ax, (col, title) in zip(axes, AXES):
        # a zero $ or FLOPs is an unknown price or parameter count, not a free model: left out
        known = [r for r in rows if float(r[col]) > 0 or col in ("tokens", "latency_s")]  # type: ignore[arg-type]
        if not known:
            ax.set_axis_off()
            continue
        pts = [(float(r[col]), float(r["quality"])) for r in known]  # type: ignore[arg-type]
        positive = all(x > 0 for x, _ in pts)
        on_front = set(front(pts))
        for i, r in enumerate(known):
            yerr = None if r["ci_low"] == "" else [[float(r["quality"]) - float(r["ci_low"])], [float(r["ci_high"]) - float(r["quality"])]]  # type: ignore[arg-type]
            ax.errorbar(pts[i][0], pts[i][1], yerr=yerr, fmt="o", ms=4, color="C3" if i in on_front else "C0", alpha=0.85)
            ax.annotate(str(r["run"]), pts[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
        idx = front(pts)
        ax.step([pts[i][0] for i in idx], [pts[i][1] for i in idx], where="post", color="C3", lw=1.2, label="Pareto front")
        area = front_area(pts, log_x=positive) if len(pts) > 1 else 0.0
        if positive and max(x for x, _ in pts) / min(x for x, _ in pts) > 20:
            ax.set_xscale("log")
        ax.set(xlabel=title, ylabel=quality_name, title=f"front area {area:.3f}" + (" (log10 x)" if positive else ""))
        ax.grid(alpha=0.3)
        left_out = len(rows) - len(known)
        notes.append(f"{col}: front {', '.join(str(known[i]['run']) for i in idx)}; area {area:.4f}"
                     + (f"; {left_out} runs without a {col} estimate left out" if left_out else ""))
        for i, r in enumerate(known):
            r[f"front_{col}"] = i in on_front
    for r in rows:
        r.update({k: clean(float(r[k])) for k in ("usd", "tflops", "tokens", "latency_s")})  # type: ignore[arg-type]
    fig.suptitle(f"{quality_name} vs cost per query")
    return Analysis("cost", "Quality vs cost", rows, fig, notes)
