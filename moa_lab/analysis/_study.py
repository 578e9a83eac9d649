"""The report of a search study: its trials' RunLogs analysed like any runs, plus the Pareto front,
the front's plot, the best configuration as YAML and the study's budget use."""

from __future__ import annotations

import html
from pathlib import Path

from moa_lab.analysis._report import Report, Section, runs_report, table_html
from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment


def study_report(exp: Experiment, folder: Path, storage: str | None = None) -> Report:
    """The study's report; the best trial's topology and experiment are written into `folder/best`."""
    from moa_lab.search import export_best, load_study, pareto, search_config, study_budget, study_dir

    study = load_study(exp, storage)
    results = pareto(study)
    if not results:
        raise ConfigError(f"study {exp.spec.name!r} has no trial evaluated on the full set yet")
    trials = study_dir(exp)
    logs = sorted(p for p in trials.glob("trial-*.jsonl"))
    report = runs_report(logs, title=f"moa-lab report: study {exp.spec.name}") if logs else Report(
        f"moa-lab report: study {exp.spec.name}", [], [], {})
    front_rows = [{"trial": r.number, **{k: round(v, 6) for k, v in r.values.items()}, "tasks": ",".join(r.tasks or ())}
                  for r in results]
    written = export_best(exp, results[0], folder / "best")
    best_yaml = "".join(f"<p>{html.escape(p.name)}</p><pre>{html.escape(p.read_text(encoding='utf-8'))}</pre>"
                        for p in [*written.topologies, written.experiment])
    config = search_config(exp)
    budget = study_budget(exp, storage)
    spent = getattr(budget, "spent_usd", None)
    use = (f"study spent ${spent:.4f} of its ${config.budget_usd} cap ({100 * spent / config.budget_usd:.1f}%)"
           if spent is not None and config.budget_usd else "the study has no $ cap")
    done = sum(1 for t in study.trials if t.state.name == "COMPLETE")
    report.sections = [
        Section("Study", f"<p>{done} complete trials of {len(study.trials)}; {len(results)} on the Pareto front "
                         f"(quality up, $ per query and latency down); {html.escape(use)}</p>"),
        Section("Pareto front", table_html(front_rows)),
        Section("Best configuration (YAML)", best_yaml),
    ]
    report.specs = {f"trial-{r.number}": r.spec.model_dump(mode="json") for r in results}
    return report
