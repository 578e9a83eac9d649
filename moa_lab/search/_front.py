"""A study's results: the Pareto front of its chosen objectives, the trial table and the front's plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moa_lab.search._config import COLUMNS
from moa_lab.search._trial import VALUES, TrialResult


def objectives(study: Any) -> list[str]:
    """The objectives the study was created with (quality first); older studies: quality, usd, latency."""
    stored = study.user_attrs.get("objectives")
    if stored:
        return list(stored)
    return ["quality", "usd", "latency"][: len(study.directions)]


def _candidates(study: Any) -> list[Any]:
    """Complete, feasible trials evaluated on the full set, each topology once (repeats left out)."""
    import optuna

    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = t.user_attrs
        feasible = all(v <= 0 for k, v in t.system_attrs.items() if k.startswith("constraints:"))  # optuna's constraint keys
        if attrs.get("fidelity", "full") == "full" and "repeat_of" not in attrs and "quality" in attrs and feasible:
            out.append(t)
    return out


def evaluated(study: Any) -> list[TrialResult]:
    """The study's complete, feasible trials evaluated on the full set, each topology once."""
    return [TrialResult.from_trial(t) for t in _candidates(study)]


def pareto(study: Any) -> list[TrialResult]:
    """The non-dominated trials on exactly the study's objectives (for a single objective: the best),
    best quality first. Trials stopped at the first fidelity stage, repeats and infeasible trials are left out."""
    full = _candidates(study)
    if len(study.directions) > 1:
        signs = [1 if d.name == "MAXIMIZE" else -1 for d in study.directions]
        front = [t for t in full if not any(_dominates(o.values, t.values, signs) for o in full)]
    else:
        sign = 1 if study.direction.name == "MAXIMIZE" else -1
        front = [max(full, key=lambda t: sign * t.value)] if full else []
    results = [TrialResult.from_trial(t) for t in front]
    return sorted(results, key=lambda r: (-r.values["quality"], r.values["cost_per_query_usd"]))


def trial_table(study: Any) -> list[dict[str, Any]]:
    """Every finished trial: number, state, its values, the trial it repeats, spec (as JSON) and the tasks it was bound to."""
    rows = []
    for t in study.trials:
        if "quality" in t.user_attrs:
            rows.append({"number": t.number, "state": t.state.name, **{k: t.user_attrs.get(k) for k in VALUES},
                         "repeat_of": t.user_attrs.get("repeat_of"), "spec": json.dumps(t.user_attrs["spec"]),
                         "tasks": ",".join(t.user_attrs.get("tasks", ()))})
    return rows


def write_front_plot(study: Any, path: Path) -> Path:
    """Quality against the first cost objective for every trial, the front (on all the study's
    objectives) in red and joined as a staircase when it has two objectives (PNG)."""
    from matplotlib.figure import Figure

    names = objectives(study)
    cost = COLUMNS[names[1]] if len(names) > 1 and names[1] in COLUMNS else "cost_per_query_usd"
    done = _candidates(study)
    front = {r.number for r in pareto(study)}
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    rest = [t for t in done if t.number not in front]
    best = sorted((t for t in done if t.number in front), key=lambda t: t.user_attrs[cost])
    ax.scatter([t.user_attrs[cost] for t in rest], [t.user_attrs["quality"] for t in rest], s=14, c="tab:gray", label="dominated trials")
    label = "Pareto front" + (f" ({', '.join(names)})" if len(names) > 2 else "")
    ax.scatter([t.user_attrs[cost] for t in best], [t.user_attrs["quality"] for t in best], s=36, c="tab:red", label=label, zorder=3)
    if len(names) == 2:
        ax.step([t.user_attrs[cost] for t in best], [t.user_attrs["quality"] for t in best], where="post", c="tab:red", lw=1)
    for t in best:
        ax.annotate(str(t.number), (t.user_attrs[cost], t.user_attrs["quality"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    if cost == "cost_per_query_usd":
        ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel({"cost_per_query_usd": "$ per query (list price)"}.get(cost, cost.replace("_", " ")))
    ax.set_ylabel("quality (search split)" if study.user_attrs.get("holdout") else "quality")
    ax.set_title(study.study_name)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _dominates(a: Any, b: Any, signs: list[int]) -> bool:
    better_or_equal = all(s * x >= s * y for s, x, y in zip(signs, a, b))
    return better_or_equal and any(s * x > s * y for s, x, y in zip(signs, a, b))
