"""Each model as a proposer against as an aggregator (the paper's Table 3), from the runs given:
as proposer, the mean score of its layer-1 proposals (or of its one-model runs); as aggregator,
the mean score of the answers it gave and its gain over the mean proposal it was shown."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

import numpy as np

from moa_lab.analysis._runs import Analysis, clean, figure, single_model, spec_of
from moa_lab.scoring import estimate
from moa_lab.tracking import RunLog


def roles(runs: Sequence[RunLog]) -> Analysis:
    """Rows (model, role, quality with CI, gain over the proposals shown) and a paired bar chart."""
    proposer: dict[str, list[float]] = {}
    aggregator: dict[str, list[float]] = {}
    gain: dict[str, list[float]] = {}
    for run in runs:
        spec = spec_of(run)
        agents = spec.layers[0].proposers if spec.layers else []
        only = single_model(run)
        for r in run.records:
            if only is not None and r.score is not None:
                proposer.setdefault(only, []).append(r.score)
            elif r.proposal_scores is not None:
                for agent, score in zip(agents, r.proposal_scores):
                    if score is not None and agent.args.get("model"):
                        proposer.setdefault(str(agent.args["model"]), []).append(score)
            agg_model = spec.aggregator.args.get("model") if spec.aggregator else None
            if agg_model and r.score is not None:
                aggregator.setdefault(str(agg_model), []).append(r.score)
                shown = [s for s in (r.layer_scores or [r.proposal_scores or []])[-1] if s is not None]
                if shown:
                    gain.setdefault(str(agg_model), []).append(r.score - fmean(shown))
    rows: list[dict[str, object]] = []
    for role, table in (("proposer", proposer), ("aggregator", aggregator)):
        for model, scores in sorted(table.items()):
            est = estimate(scores)
            row: dict[str, object] = {"model": model, "role": role, "samples": est.n, "quality": clean(est.mean),
                                      "ci_low": clean(est.low), "ci_high": clean(est.high)}
            if role == "aggregator":
                g = estimate(gain.get(model, []))
                row |= {"gain_over_proposals": clean(g.mean), "gain_low": clean(g.low), "gain_high": clean(g.high)}
            rows.append(row)
    fig, ax = figure()
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    for j, role in enumerate(("proposer", "aggregator")):
        mine = {str(r["model"]): r for r in rows if r["role"] == role}
        q = [float(mine[m]["quality"]) if m in mine else 0.0 for m in models]  # type: ignore[arg-type]
        err = [[q[i] - float(mine[m]["ci_low"]) if m in mine else 0 for i, m in enumerate(models)],  # type: ignore[arg-type]
               [float(mine[m]["ci_high"]) - q[i] if m in mine else 0 for i, m in enumerate(models)]]  # type: ignore[arg-type]
        ax.bar(np.arange(len(models)) + j * 0.4, q, 0.4, yerr=err, capsize=3, label=f"as {role}")
    ax.set_xticks(np.arange(len(models)) + 0.2, [m.split("/")[-1] for m in models], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="quality (mean score, 95% CI)", title="Each model as proposer and as aggregator")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    notes = [f"{r['model']} as {r['role']}: {r['quality']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] (n={r['samples']})"
             + (f", gain over the proposals shown {r['gain_over_proposals']:+.3f}" if r.get("gain_over_proposals", "") != "" else "")
             for r in rows]
    return Analysis("roles", "Proposer vs aggregator", rows, fig, notes)
