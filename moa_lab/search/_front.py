"""A study's results: the Pareto front, the trial table and the front's plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moa_lab.search._trial import OBJECTIVES, TrialResult


def pareto(study: Any) -> list[TrialResult]:
    """The front of the trials evaluated on the full set (for a single objective: the best),
    best quality first. Trials stopped at the first fidelity stage are left out."""
    import optuna

    full = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("fidelity", "full") == "full"]
    if len(study.directions) > 1:
        front = [t for t in full if not any(_dominates(o, t, study.directions) for o in full)]
    else:
        sign = 1 if study.direction.name == "MAXIMIZE" else -1
        front = [max(full, key=lambda t: sign * t.value)] if full else []
    results = [TrialResult.from_trial(t) for t in front]
    return sorted(results, key=lambda r: (-r.values["quality"], r.values["cost_per_query_usd"]))


def trial_table(study: Any) -> list[dict[str, Any]]:
    """Every finished trial: number, state, objectives, spec (as JSON) and the tasks it was bound to."""
    rows = []
    for t in study.trials:
        if "quality" in t.user_attrs:
            rows.append({"number": t.number, "state": t.state.name, **{k: t.user_attrs[k] for k in OBJECTIVES},
                         "spec": json.dumps(t.user_attrs["spec"]), "tasks": ",".join(t.user_attrs.get("tasks", ()))})
    return rows


def write_front_plot(study: Any, path: Path) -> Path:
    """Quality against $ per query for every complete trial, the Pareto front highlighted (PNG)."""
    from matplotlib.figure import Figure

    done = [t for t in study.trials if t.state.name == "COMPLETE" and "quality" in t.user_attrs]
    front = {r.number for r in pareto(study)}
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for on_front in (False, True):
        pts = [t for t in done if (t.number in front) == on_front]
        ax.scatter([t.user_attrs["cost_per_query_usd"] for t in pts], [t.user_attrs["quality"] for t in pts],
                   s=36 if on_front else 14, c="tab:red" if on_front else "tab:gray", label="Pareto front" if on_front else "trials")
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel("$ per query (list price)")
    ax.set_ylabel("quality")
    ax.set_title(study.study_name)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _dominates(a: Any, b: Any, directions: Any) -> bool:
    signs = [1 if d.name == "MAXIMIZE" else -1 for d in directions]
    better_or_equal = all(s * x >= s * y for s, x, y in zip(signs, a.values, b.values))
    return better_or_equal and any(s * x > s * y for s, x, y in zip(signs, a.values, b.values))
