"""`moa-lab search`: topology studies under a budget, a line per trial and the front."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from moa_lab.cli._app import app, console, quiet_libraries, state
from moa_lab.core import redact_uri
from moa_lab.evaluation import Experiment, groups
from moa_lab.models import Budget
from moa_lab.scoring import Scoring


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML with a search: section.")],
    trials: Annotated[Optional[int], typer.Option(help="Trials to finish (default: the file's).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: a journal file in the study folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped study.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine sharing the study.")] = 1,
) -> None:
    """Search topologies with Optuna under the study's hard budget; prints each trial and the front."""
    from moa_lab.search import TrialResult, load_study, open_study, pareto, run_study, search_config, study_budget

    quiet_libraries(state["verbose"])  # optuna reset its log level on import
    exp = Experiment.load(experiment)
    sources = groups(exp)  # bad inputs (a dataset not pulled) fail before a study, ledger or store is made
    exp.endpoints()
    config = search_config(exp)
    if config.budget_usd is not None:  # and so do models without a price under the study's budget
        judges = [m for g in sources if g.scorer is not None for m in Scoring(g.scorer).models()]
        priced = exp.model_set(use_cache=False, budget=Budget(config.budget_usd))
        priced.check_prices([*config.space.pool, *config.space.aggregator_models, *judges])
    models = exp.model_set(budget=study_budget(exp, storage))
    if workers > 1:
        import subprocess

        open_study(exp, models, storage=storage, resume=resume)  # created once, baselines enqueued once
        cmd = [sys.executable, "-m", "moa_lab.cli", "search", str(experiment), "--resume"]
        cmd += (["--trials", str(trials)] if trials else []) + (["--storage", storage] if storage else [])
        from moa_lab.models.providers._embedded import WORKERS_ENV

        env = {**os.environ, WORKERS_ENV: str(workers)}  # embedded servers, one per worker, share the idle cores
        procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        _show_front(pareto(load_study(exp, storage)), search_config(exp).objectives, search_config(exp).space.pool)
        if any(codes):
            raise typer.Exit(max(codes))
        return

    shown, pool = search_config(exp).objectives, search_config(exp).space.pool

    def show(result: TrialResult) -> None:
        if result.repeat_of is not None:
            console.print(f"trial {result.number:>3}: repeats trial {result.repeat_of} (answered from its record, not paid or counted)")
            return
        spent = models.budget.spent_usd if models.budget is not None else 0.0
        console.print(f"trial {result.number:>3}: {_values(result.values, shown)} · {describe(result.spec, pool)} · study spent ${spent:.4f}")

    tracker = None
    if exp.spec.tracking.mlflow:
        from moa_lab.tracking import MlflowTracker

        tracker = MlflowTracker(tracking_uri=exp.spec.tracking.tracking_uri, experiment=exp.spec.tracking.experiment or exp.spec.name,
                                project_root=exp.project, traces=True)

    async def main() -> Any:
        async with models:
            return await run_study(exp, models, trials=trials, storage=storage, resume=resume, on_trial=show, tracker=tracker)

    study = asyncio.run(main())
    _show_front(pareto(study), shown, pool)
    if models.budget is not None:
        console.print(f"study spent ${models.budget.spent_usd:.4f} of ${models.budget.max_usd}")
    console.print(f"dashboard: optuna-dashboard {study_storage_hint(exp, storage)}")
    failed = sum(1 for t in study.trials if t.state.name == "FAIL")
    if failed:
        from moa_lab.cli._app import FAILED_EXIT

        console.print(f"[red]{failed} of {len(study.trials)} trials failed[/]")
        raise typer.Exit(FAILED_EXIT)


def study_storage_hint(exp: Experiment, storage: str | None) -> str:
    """What to give optuna-dashboard: the storage URL (its password hidden), or the default journal file."""
    from moa_lab.search import study_dir

    return redact_uri(storage) if storage else str(study_dir(exp) / "journal.log")


def _values(values: dict[str, float], objectives: Any) -> str:
    """A trial's objective values, in the study's order."""
    out = []
    for name in objectives:
        if name == "quality":
            out.append(f"quality {values['quality']:.3f}")
        elif name == "usd":
            out.append(f"${values['cost_per_query_usd']:.2e}/query")
        elif name == "latency":
            out.append(f"p50 {values['latency_p50_s']:.2f}s")
        elif name == "tokens":
            out.append(f"{values['tokens_per_query']:.0f} tok/query")
        else:
            out.append(f"{values.get('flops_per_query', float('nan')):.2e} FLOPs/query")
    return " · ".join(out)


def describe(spec: Any, pool: tuple[str, ...] = ()) -> str:
    """A topology on one line with every knob a study varies: models per layer (a model sampled k
    times as `model×k`; most of `pool` as `all 18 but x,y`), the aggregator (and its model),
    temperature and max_tokens; a cascaded layer ends with its stages and threshold."""
    agg = spec.aggregator.label if spec.aggregator else "-"
    if spec.selector is not None and spec.selector.kind == "learned":
        knobs = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.selector.args.items() if k != "path")
        return escape(f"learned({knobs}) over {len(spec.layers[0].proposers)}{_cascade(spec.layers[0])} -> {agg}")
    layers = []
    for layer in spec.layers:
        models = [str(a.args.get("model", a.agent)) for a in layer.proposers]
        missing = [m.split("/")[-1] for m in pool if m not in models]
        if len(pool) > 3 and len(set(models)) == len(models) and set(models) <= set(pool) and len(missing) < len(models):
            layers.append(f"all {len(pool)}" + (f" but {','.join(missing)}" if missing else "") + _cascade(layer))
            continue
        names = [m.split("/")[-1] for m in models]
        layers.append(",".join(n if names.count(n) == 1 else f"{n}×{names.count(n)}" for n in dict.fromkeys(names)) + _cascade(layer))
    knobs = {f"{k}={v}" for layer in spec.layers for a in layer.proposers for k, v in a.args.items() if k in ("temperature", "max_tokens")}
    return escape(f"[{' | '.join(layers)}] -> {agg}" + (f" · {' '.join(sorted(knobs, reverse=True))}" if knobs else ""))


def _cascade(layer: Any) -> str:
    """` cascade 2,5≥0.80 exit`: a layer's stages (the whole layer last), threshold and exit, or ""."""
    c = layer.cascade
    if c is None:
        return ""
    stages = ",".join(str(n) for n in c.bounds(len(layer.proposers)))
    return f" cascade {stages}≥{c.threshold:.2f}" + (" exit" if c.exit else "")


def _show_front(results: list[Any], objectives: Any, pool: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table(title=f"Pareto front of {', '.join(objectives)} (search split)", title_justify="left", box=None)
    for col in ("trial", "objectives", "topology"):
        table.add_column(col, justify="left" if col != "trial" else "right")
    for r in results:
        table.add_row(str(r.number), _values(r.values, objectives), describe(r.spec, pool))
    console.print(table)
