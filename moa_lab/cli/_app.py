"""The `moa-lab` command line: a thin layer over the public API."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from moa_lab.cli._render import show_query, show_summary
from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.models import Budget, MemoryCache, ModelSet, SqliteCache, default_cache_dir
from moa_lab.pipeline import Pipeline, QueryResult
from moa_lab.registry import lookup, names
from moa_lab.topology import load_topology, to_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Mixture-of-Agents research framework.")
console = Console()
state = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    state["debug"] = debug


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    args = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--arg {pair!r}: write NAME=VALUE, e.g. --arg k=3")
        args[key] = yaml.safe_load(value)
    return args


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The query.")],
    topology: Annotated[str, typer.Option("--topology", "-t", help="Preset name or topology YAML.")] = "self-moa",
    arg: Annotated[list[str], typer.Option("--arg", "-a", help="Preset argument NAME=VALUE (repeatable).")] = [],  # noqa: B006
    config: Annotated[Optional[Path], typer.Option(help="Experiment YAML whose endpoints, prices and budget to use.")] = None,
    budget_usd: Annotated[Optional[float], typer.Option(help="Hard $ cap for this question.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")] = False,
) -> None:
    """Ask one question; print each layer's proposals, the answer, tokens, $ and latency."""
    args = _parse_args(arg)
    spec = load_topology({"preset": topology, **args} if args else topology)
    if config is not None:
        experiment = Experiment.load(config, topology=spec.model_dump(mode="json"))
        models = experiment.model_set(use_cache=False if no_cache else None)
    else:
        cache_dir = default_cache_dir()
        cache = MemoryCache() if no_cache else SqliteCache(cache_dir / "calls.sqlite")
        models = ModelSet(cache=cache, cache_dir=cache_dir, local_slots=spec.width)
    if budget_usd is not None:
        models.budget = Budget(usd=budget_usd)

    async def main() -> QueryResult:
        async with models:
            return await Pipeline(spec, models).run_query(Sample(question, id="ask"))

    with console.status(f"asking {spec.name} ({sum(len(l.proposers) for l in spec.layers)} proposers)…"):
        result = asyncio.run(main())
    show_query(console, result)
    if result.error:
        raise typer.Exit(1)


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (see experiments/).")],
    output: Annotated[Optional[Path], typer.Option(help="RunLog path (default: <output>/<name>-<time>.jsonl).")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Queries in flight at once.")] = None,
    arg: Annotated[list[str], typer.Option("--arg", "-a", help="Preset argument NAME=VALUE (repeatable).")] = [],  # noqa: B006
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")] = False,
) -> None:
    """Run a topology over an experiment's queries and write every trace to a RunLog."""
    exp = Experiment.load(experiment, topology_args=_parse_args(arg), concurrency=concurrency)
    models = exp.model_set(use_cache=False if no_cache else None)
    total = len(exp.samples())
    console.print(f"[bold]{exp.spec.name}[/]: {exp.topology.name}, {total} queries, models {', '.join(exp.topology.models()) or '(none)'}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn(), TimeRemainingColumn())

    async def main() -> Any:
        async with models:
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task("queries", total=total, stats="")
                spent = {"usd": 0.0, "failed": 0, "cached": 0, "calls": 0}

                def tick(result: QueryResult) -> None:
                    spent["usd"] += result.cost.usd
                    spent["failed"] += result.error is not None
                    spent["calls"] += len(result.calls)
                    spent["cached"] += len(result.calls) - result.new_calls
                    stats = f"${spent['usd']:.4f} · {spent['cached']}/{spent['calls']} cached · {spent['failed']} failed"
                    progress.update(task, advance=1, stats=stats)

                return await run_experiment(exp, models, runlog=output, on_result=tick)

    summary = asyncio.run(main())
    show_summary(console, summary)


@app.command()
def topologies(show: Annotated[Optional[str], typer.Option(help="Print this preset's spec as YAML.")] = None) -> None:
    """List preset topologies and registered agents."""
    if show:
        console.print(to_yaml(load_topology(show)), markup=False, highlight=False)
        return
    for kind, title in (("topology", "Presets"), ("proposer", "Proposers"), ("aggregator", "Aggregators"),
                        ("extractor", "Extractors"), ("selector", "Selectors")):
        console.print(f"[bold]{title}[/]")
        for name in names(kind):
            console.print(f"  {name:<24} {lookup(kind, name).summary}")


def main() -> None:
    """Entry point: one-line errors with the fix, a traceback only with --debug."""
    import moa_lab.selection  # noqa: F401 - registers the built-in selectors

    try:
        app(standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes a message
        if state["debug"]:
            raise
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {message}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        sys.exit(2)
