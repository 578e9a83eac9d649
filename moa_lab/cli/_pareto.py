"""`moa-lab pareto`: a study's front, re-checked on its held-out questions, and the best written out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moa_lab.cli._app import app, console
from moa_lab.cli._search import describe
from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment


@app.command("pareto")
def pareto_(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML the study was run from.")],
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL, if not the default journal.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the best topology, its experiment and the plot.")] = None,
    match_quality: Annotated[Optional[str], typer.Option(
        help="Report the cheapest configuration with at least this held-out quality: a number, or `best-single` "
             "(every pool model alone, the best on the search split, its held-out quality).")] = None,
    max_cost: Annotated[Optional[str], typer.Option(
        help="Report the most accurate configuration at or under this held-out $ per query: a number, or a pool "
             "model (its own $ per query; the model alone is a candidate too).")] = None,
) -> None:
    """The study's Pareto front on its chosen objectives, re-evaluated on the held-out questions.

    The front is chosen on the search split; with `search.holdout` each front trial is evaluated
    again on the held-out questions (through the cache, resumed when run again) and shown with 95%
    intervals and its optimism (search - held-out). `--match-quality` and `--max-cost` are answered
    on held-out numbers. The best-quality trial is written as topology YAML and as an experiment
    that `moa-lab eval` runs as is, reproducing the trial on the split it was judged on.
    """
    from moa_lab.search import (best_at_most, best_single, cheapest_at_least, evaluated, export_best, load_study, objectives,
                                pareto, recheck, search_config, single_model, study_budget, write_front_plot)

    exp = Experiment.load(experiment)
    config = search_config(exp)
    study = load_study(exp, storage)
    results = pareto(study)
    if not results:
        raise ConfigError(f"study {exp.spec.name!r} has no trial evaluated on the full set yet")
    trials = evaluated(study)
    models = exp.model_set(budget=study_budget(exp, storage))
    model = max_cost if max_cost is not None and not _is_number(max_cost) else None
    if model is not None and model not in config.space.pool:
        raise ConfigError(f"--max-cost {model}: neither a number nor a pool model of the study")

    async def measure() -> tuple[list[Any], Any, Any]:
        async with models:
            rows = await recheck(exp, config, models, results)
            ref = await best_single(exp, config, models, trials) if match_quality == "best-single" else None
            alone = (await single_model(exp, config, models, model, trials, search=config.holdout is None)
                     if model is not None else None)
        return rows, ref, alone

    rows, ref, alone = asyncio.run(measure())
    pool = config.space.pool
    _show(rows, objectives(study), config.holdout, config.space.pool)
    side = "held-out" if config.holdout else "search-split"
    if match_quality is not None:
        if match_quality == "best-single":
            assert ref is not None
            console.print(f"best single model (chosen on the search split): {_line(ref, pool)}")
            threshold = ref.judged.quality.mean
        else:
            threshold = float(match_quality)
        found = cheapest_at_least(rows + ([ref] if ref else []), threshold)
        console.print(f"cheapest at or above {side} quality {threshold:.3f}: " + (_line(found, pool) if found else "none"))
    if max_cost is not None:
        candidates = rows + ([alone] if alone else [])
        if alone is not None:
            console.print(f"{model} alone: {_line(alone, pool)}")
        limit = alone.judged.usd_per_query if alone is not None else float(max_cost)
        found = best_at_most(candidates, limit)
        console.print(f"most accurate at or under {side} ${limit:.2e}/query: " + (_line(found, pool) if found else "none"))
    folder = out or exp.output_dir() / exp.spec.name
    written = export_best(exp, results[0], folder)
    plot = write_front_plot(study, folder / "pareto.png")
    console.print(f"best-quality trial {results[0].number}: search-split quality {results[0].values['quality']:.4f}")
    console.print(f"topology:          {', '.join(_shown(p) for p in written.topologies)}")
    console.print(f"evaluate it again: moa-lab eval {_shown(written.experiment)}")
    console.print(f"plot:              {_shown(plot)}")


def _show(rows: list[Any], objectives: list[str], holdout: float | None, pool: tuple[str, ...]) -> None:
    from rich.table import Table

    title = f"Pareto front of {', '.join(objectives)}, chosen on the search split"
    title += f", re-checked on the {holdout:.0%} held out" if holdout else " (no search.holdout: nothing re-checked)"
    table = Table(title=title, title_justify="left", box=None)
    for col in ("trial", "search quality [95% CI]", "held-out quality [95% CI]", "optimism", "$/query held-out", "topology"):
        table.add_column(col, justify="left" if col == "topology" else "right")
    for r in rows:
        table.add_row(r.label.removeprefix("trial "), str(r.search.quality) if r.search else "-", str(r.held.quality) if r.held else "-",
                      f"{r.optimism:+.3f}" if r.optimism is not None else "-", f"{r.held.usd_per_query:.2e}" if r.held else "-",
                      describe(r.spec, pool))
    console.print(table)


def _line(row: Any, pool: tuple[str, ...]) -> str:
    side = "held-out" if row.held else "search split"
    return f"{row.label}, {side} quality {row.judged.quality} at ${row.judged.usd_per_query:.2e}/query, {describe(row.spec, pool)}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _shown(path: Path) -> str:
    """A path as short as it can be: relative to the current folder when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


