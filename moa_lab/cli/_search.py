"""`moa-lab search` and `moa-lab pareto`: topology studies under a budget, and their fronts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.markup import escape

from moa_lab.cli._app import app, console
from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment
from moa_lab.topology import to_yaml


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML with a search: section.")],
    trials: Annotated[Optional[int], typer.Option(help="Trials to finish (default: the file's).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: a journal file in the study folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped study.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine sharing the study.")] = 1,
) -> None:
    """Search topologies with Optuna under the study's hard budget; prints each trial and the front."""
    from moa_lab.search import load_study, open_study, pareto as front, run_study, study_budget

    exp = Experiment.load(experiment)
    models = exp.model_set(budget=study_budget(exp, storage))
    if workers > 1:
        import subprocess

        open_study(exp, models, storage=storage, resume=resume)  # created once, baselines enqueued once
        cmd = [sys.executable, "-m", "moa_lab.cli", "search", str(experiment), "--resume"]
        cmd += (["--trials", str(trials)] if trials else []) + (["--storage", storage] if storage else [])
        procs = [subprocess.Popen(cmd) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        _show_front(front(load_study(exp, storage)))
        if any(codes):
            raise typer.Exit(max(codes))
        return

    def show(number: int, spec: Any, values: dict[str, float]) -> None:
        spent = models.budget.spent_usd if models.budget is not None else 0.0
        console.print(f"trial {number:>3}: quality {values['quality']:.3f} · ${values['cost_per_query_usd']:.2e}/query · "
                      f"p50 {values['latency_p50_s']:.2f}s · {_describe(spec)} · study spent ${spent:.4f}")

    tracker = None
    if exp.spec.tracking.mlflow:
        from moa_lab.evaluation import project_root
        from moa_lab.tracking import MlflowTracker

        tracker = MlflowTracker(tracking_uri=exp.spec.tracking.tracking_uri, experiment=exp.spec.tracking.experiment or exp.spec.name,
                                project_root=project_root(exp.folder), traces=True)

    async def main() -> Any:
        async with models:
            return await run_study(exp, models, trials=trials, storage=storage, resume=resume, on_trial=show, tracker=tracker)

    study = asyncio.run(main())
    _show_front(front(study))
    if models.budget is not None:
        console.print(f"study spent ${models.budget.spent_usd:.4f} of ${models.budget.max_usd}")
    console.print(f"dashboard: optuna-dashboard {study_storage_hint(exp, storage)}")


@app.command("pareto")
def pareto_(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML the study was run from.")],
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL, if not the default journal.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the best topology, its experiment and the plot.")] = None,
    match_quality: Annotated[Optional[float], typer.Option(help="Also report the cheapest trial with at least this quality.")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Also report the best trial at or under this $ per query.")] = None,
) -> None:
    """The study's Pareto front (quality, $ per query, latency), its plot, and the best-quality spec
    written as a topology YAML and as an experiment that `moa-lab eval` runs as is."""
    from moa_lab.search import load_study, pareto as front
    from moa_lab.search._study import write_front_plot

    exp = Experiment.load(experiment)
    study = load_study(exp, storage)
    results = front(study)
    if not results:
        raise ConfigError(f"study {exp.spec.name!r} has no trial evaluated on the full set yet")
    _show_front(results)
    if match_quality is not None:
        ok = [r for r in results if r.values["quality"] >= match_quality]
        best = min(ok, key=lambda r: r.values["cost_per_query_usd"]) if ok else None
        console.print(f"cheapest with quality >= {match_quality}: " + (f"trial {best.number}, {best.values['quality']:.3f} at "
                      f"${best.values['cost_per_query_usd']:.2e}/query, {_describe(best.spec)}" if best else "none on the front"))
    if max_cost is not None:
        ok = [r for r in results if r.values["cost_per_query_usd"] <= max_cost]
        best = max(ok, key=lambda r: r.values["quality"]) if ok else None
        console.print(f"most accurate at <= ${max_cost:.2e}/query: " + (f"trial {best.number}, {best.values['quality']:.3f} at "
                      f"${best.values['cost_per_query_usd']:.2e}/query, {_describe(best.spec)}" if best else "none on the front"))
    folder = out or exp.output_dir() / exp.spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "best_topology.yaml").write_text(to_yaml(results[0].spec))
    body = exp.spec.model_dump(mode="json", exclude_none=True, exclude={"search", "topology", "topologies", "output"})
    body["name"] = f"{exp.spec.name}-best"
    body["topologies"] = {"best": results[0].spec.model_dump(mode="json")}
    for endpoint in body.get("endpoints", {}).values():  # make the data paths absolute: the file lives elsewhere
        endpoint["paths"] = [str(exp.path(p)) for p in endpoint.get("paths", [])]
        if endpoint.get("questions"):
            endpoint["questions"] = str(exp.path(endpoint["questions"]))
    if body.get("benchmark", {}).get("path"):
        body["benchmark"]["path"] = str(exp.path(body["benchmark"]["path"]))
    (folder / "best_experiment.yaml").write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    plot = write_front_plot(study, folder / "pareto.png")
    console.print(f"best-quality topology: {folder / 'best_topology.yaml'}")
    console.print(f"evaluate it as is:     moa-lab eval {folder / 'best_experiment.yaml'}")
    console.print(f"plot:                  {plot}")


def study_storage_hint(exp: Experiment, storage: str | None) -> str:
    from moa_lab.search._study import study_dir

    return storage or str(study_dir(exp) / "journal.log")


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
