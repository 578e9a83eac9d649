"""`moa-lab search` and `moa-lab pareto`: topology studies under a budget, and their fronts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from moa_lab.cli._app import app, console, quiet_libraries, state
from moa_lab.core import ConfigError, redact_uri
from moa_lab.evaluation import Experiment, groups


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML with a search: section.")],
    trials: Annotated[Optional[int], typer.Option(help="Trials to finish (default: the file's).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: a journal file in the study folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped study.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine sharing the study.")] = 1,
) -> None:
    """Search topologies with Optuna under the study's hard budget; prints each trial and the front."""
    from moa_lab.search import TrialResult, load_study, open_study, pareto, run_study, study_budget

    quiet_libraries(state["verbose"])  # optuna reset its log level on import
    exp = Experiment.load(experiment)
    groups(exp)  # bad inputs (a dataset not pulled) fail before a study, ledger or store is made
    exp.endpoints()
    models = exp.model_set(budget=study_budget(exp, storage))
    if workers > 1:
        import subprocess

        open_study(exp, models, storage=storage, resume=resume)  # created once, baselines enqueued once
        cmd = [sys.executable, "-m", "moa_lab.cli", "search", str(experiment), "--resume"]
        cmd += (["--trials", str(trials)] if trials else []) + (["--storage", storage] if storage else [])
        procs = [subprocess.Popen(cmd) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        _show_front(pareto(load_study(exp, storage)))
        if any(codes):
            raise typer.Exit(max(codes))
        return

    def show(result: TrialResult) -> None:
        spent = models.budget.spent_usd if models.budget is not None else 0.0
        v = result.values
        console.print(f"trial {result.number:>3}: quality {v['quality']:.3f} · ${v['cost_per_query_usd']:.2e}/query · "
                      f"p50 {v['latency_p50_s']:.2f}s · {_describe(result.spec)} · study spent ${spent:.4f}")

    tracker = None
    if exp.spec.tracking.mlflow:
        from moa_lab.tracking import MlflowTracker

        tracker = MlflowTracker(tracking_uri=exp.spec.tracking.tracking_uri, experiment=exp.spec.tracking.experiment or exp.spec.name,
                                project_root=exp.project, traces=True)

    async def main() -> Any:
        async with models:
            return await run_study(exp, models, trials=trials, storage=storage, resume=resume, on_trial=show, tracker=tracker)

    study = asyncio.run(main())
    _show_front(pareto(study))
    if models.budget is not None:
        console.print(f"study spent ${models.budget.spent_usd:.4f} of ${models.budget.max_usd}")
    console.print(f"dashboard: optuna-dashboard {study_storage_hint(exp, storage)}")
    failed = sum(1 for t in study.trials if t.state.name == "FAIL")
    if failed:
        from moa_lab.cli._app import FAILED_EXIT

        console.print(f"[red]{failed} of {len(study.trials)} trials failed[/]")
        raise typer.Exit(FAILED_EXIT)


@app.command("pareto")
def pareto_(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML the study was run from.")],
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL, if not the default journal.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the best topology, its experiment and the plot.")] = None,
    match_quality: Annotated[Optional[float], typer.Option(help="Also report the cheapest trial with at least this quality.")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Also report the best trial at or under this $ per query.")] = None,
) -> None:
    """The study's Pareto front, its plot, and the best trial written out to be evaluated again.

    The front is quality up, $ per query and latency down. The best-quality trial is written as
    topology YAML and as an experiment that `moa-lab eval` runs as is, reproducing the trial.
    """
    from moa_lab.search import export_best, load_study, pareto, write_front_plot

    exp = Experiment.load(experiment)
    study = load_study(exp, storage)
    results = pareto(study)
    if not results:
        raise ConfigError(f"study {exp.spec.name!r} has no trial evaluated on the full set yet")
    _show_front(results)
    if match_quality is not None:
        ok = [r for r in results if r.values["quality"] >= match_quality]
        best = min(ok, key=lambda r: r.values["cost_per_query_usd"]) if ok else None
        console.print(f"cheapest with quality >= {match_quality}: " + (_line(best) if best else "none on the front"))
    if max_cost is not None:
        ok = [r for r in results if r.values["cost_per_query_usd"] <= max_cost]
        best = max(ok, key=lambda r: r.values["quality"]) if ok else None
        console.print(f"most accurate at <= ${max_cost:.2e}/query: " + (_line(best) if best else "none on the front"))
    folder = out or exp.output_dir() / exp.spec.name
    written = export_best(exp, results[0], folder)
    plot = write_front_plot(study, folder / "pareto.png")
    console.print(f"best-quality trial {results[0].number}: quality {results[0].values['quality']:.4f}")
    console.print(f"topology:          {', '.join(_shown(p) for p in written.topologies)}")
    console.print(f"evaluate it again: moa-lab eval {_shown(written.experiment)}")
    console.print(f"plot:              {_shown(plot)}")


def study_storage_hint(exp: Experiment, storage: str | None) -> str:
    """What to give optuna-dashboard: the storage URL (its password hidden), or the default journal file."""
    from moa_lab.search import study_dir

    return redact_uri(storage) if storage else str(study_dir(exp) / "journal.log")


def _shown(path: Path) -> str:
    """A path as short as it can be: relative to the current folder when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _line(result: Any) -> str:
    v = result.values
    return f"trial {result.number}, {v['quality']:.3f} at ${v['cost_per_query_usd']:.2e}/query, {_describe(result.spec)}"


def _describe(spec: Any) -> str:
    agg = spec.aggregator.agent if spec.aggregator else "-"
    if spec.selector is not None and spec.selector.kind == "learned":
        knobs = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.selector.args.items() if k != "path")
        return escape(f"learned({knobs}) over {len(spec.layers[0].proposers)} -> {agg}")
    layers = " | ".join(",".join(a.args.get("model", "?").split("/")[-1] for a in layer.proposers) for layer in spec.layers)
    return escape(f"[{layers}] -> {agg}")


def _show_front(results: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Pareto front (quality up, $ and latency down)", title_justify="left", box=None)
    for col in ("trial", "quality", "$/query", "p50 s", "topology"):
        table.add_column(col, justify="left" if col == "topology" else "right")
    for r in results:
        v = r.values
        table.add_row(str(r.number), f"{v['quality']:.3f}", f"{v['cost_per_query_usd']:.2e}", f"{v['latency_p50_s']:.2f}", _describe(r.spec))
    console.print(table)
