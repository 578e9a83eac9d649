"""The `moa-lab` command line: a thin layer over the public API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from moa_lab.cli._progress import RunProgress
from moa_lab.cli._router import router_app
from moa_lab.cli._render import show_answers, show_query
from moa_lab.core import ConfigError, Sample, StoreDamaged, default_cache_dir
from moa_lab.evaluation import Experiment, ExperimentRun, groups
from moa_lab.models import Budget, MemoryCache, ModelSet, SqliteCache, recording_file
from moa_lab.pipeline import Pipeline
from moa_lab.tracking import QueryRecord, redact_uri
from moa_lab.registry import names
from moa_lab.topology import load_topology, to_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Mixture-of-Agents research framework.")
app.add_typer(router_app, name="router")
# piped output (CI logs, files) gets room for the result tables instead of rich's 80 columns
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
state = {"debug": False, "verbose": False}
FAILED_EXIT = 3
"""The exit status of `run`, `eval` and `search` when any sample or trial failed."""
QUIET_LOGGERS = ("mlflow", "alembic", "optuna", "httpx", "urllib3")
"""Libraries whose INFO lines (store migrations, study creation, requests) are hidden without --verbose."""


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the libraries' INFO logs (MLflow, Optuna, HTTP).")] = False,
) -> None:
    state["debug"], state["verbose"] = debug, verbose
    quiet_libraries(verbose)


def quiet_libraries(verbose: bool = False) -> None:
    """Hide the libraries' INFO logs unless `verbose`; warnings and errors still show. Optuna resets
    its level when imported, so the search command calls this again after importing it."""
    import logging

    level = logging.INFO if verbose else logging.WARNING
    if verbose or "MLFLOW_LOGGING_LEVEL" not in os.environ:  # read when mlflow configures its loggers
        os.environ["MLFLOW_LOGGING_LEVEL"] = logging.getLevelName(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if "optuna" in sys.modules:
        sys.modules["optuna"].logging.set_verbosity(level)


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
    budget = Budget(usd=budget_usd) if budget_usd is not None else None
    if config is not None:
        experiment = Experiment.load(config, topology=spec.model_dump(mode="json"))
        models = experiment.model_set(use_cache=False if no_cache else None, budget=budget)
    else:
        cache_dir = default_cache_dir()
        cache = MemoryCache() if no_cache else SqliteCache(cache_dir / "calls.sqlite")
        models = ModelSet(cache=cache, budget=budget, cache_dir=cache_dir, local_slots=spec.width)

    async def main() -> QueryRecord:
        async with models:
            return await Pipeline(spec, models).run_query(Sample(question, id="ask"))

    with console.status(f"asking {spec.name} ({sum(len(l.proposers) for l in spec.layers)} proposers)…"):
        result = asyncio.run(main())
    show_query(console, result)
    if result.error:
        raise typer.Exit(1)


RUN_HELP = """Run an experiment's topologies over its samples: the answers, accuracy against the targets
(when the samples have them), tokens and $; every trace in a RunLog of a new run folder. Tracked in
MLflow when the file has a tracking: section."""
EVAL_HELP = """Evaluate every topology of an experiment on its samples: quality with CIs, cost, latency.
The same run as `moa-lab run`, tracked in MLflow by default. Each invocation is a new run (a folder
of RunLogs and an MLflow run); --resume continues the latest unfinished one."""


def run_or_eval(
    ctx: typer.Context,
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (see experiments/).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest unfinished run: finished samples are kept, failed ones run again.")] = False,
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="With --resume: keep failed samples as they are.")] = False,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Write RunLogs only.")] = False,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: the project's mlruns/mlflow.db).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")] = False,
    concurrency: Annotated[Optional[int], typer.Option(help="Queries in flight at once.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Folder for the runs (default: runs/ in the experiment's project).")] = None,
    scorer: Annotated[Optional[str], typer.Option(help="Override the scorer (YAML: a name or {kind: ..., ...}).")] = None,
    arg: Annotated[list[str], typer.Option("--arg", "-a", help="Preset argument NAME=VALUE (repeatable).")] = [],  # noqa: B006
    replay: Annotated[Optional[Path], typer.Option(help="Answer every model call from this recording (`moa-lab record export`); "
                                                        "no endpoint is called and the call cache is off.")] = None,
) -> None:
    is_run = ctx.info_name == "run"
    exp = Experiment.load(experiment, topology_args=_parse_args(arg), concurrency=concurrency,
                          scorer=yaml.safe_load(scorer) if scorer else None, output=str(output.resolve()) if output else None)
    track = not no_mlflow and (not is_run or "tracking" in exp.spec.model_fields_set)
    done, records = _execute(exp, resume=resume, keep_failed=keep_failed, track=track, tracking_uri=tracking_uri, no_cache=no_cache,
                             replay=replay)
    if is_run:
        show_answers(console, records)
    _report(exp, done)


app.command("run", help=RUN_HELP)(run_or_eval)
app.command("eval", help=EVAL_HELP)(run_or_eval)


def _execute(exp: Experiment, *, resume: bool, keep_failed: bool, track: bool, tracking_uri: str | None, no_cache: bool,
             replay: Path | None = None) -> tuple[ExperimentRun, list[QueryRecord]]:
    """Run the experiment with a progress bar per RunLog; Ctrl-C (or SIGTERM) stops after the
    queries in flight, a second one aborts."""
    from moa_lab.evaluation import check_prices, run_experiment, run_folder

    # bad inputs, unpriced models under a budget included, fail before a model, store or folder is made
    check_prices(exp, exp.model_set(use_cache=False), groups(exp))
    if replay is not None:
        recording_file(replay)
    folder = run_folder(exp, resume=resume)
    models = exp.model_set(use_cache=False if no_cache else None, run=folder, replay=replay)  # a budget's ledger lives in the run
    tracker = None
    if track and exp.spec.tracking.mlflow:
        from moa_lab.tracking import MlflowTracker

        tracker = MlflowTracker(tracking_uri=tracking_uri or exp.spec.tracking.tracking_uri, experiment=exp.spec.tracking.experiment or exp.spec.name,
                                project_root=exp.project, traces=exp.spec.tracking.traces is not False)
    records: list[QueryRecord] = []
    misses: list[str] = []

    async def main() -> ExperimentRun:
        import signal

        stop = asyncio.Event()

        def request_stop() -> None:
            if stop.is_set():  # a second signal: stop now
                raise KeyboardInterrupt
            stop.set()
            console.print("[yellow]stopping: finishing the queries in flight (again to abort)…[/]")

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, request_stop)
        async with models:
            with RunProgress(console) as progress:
                running: dict[str, list[float]] = {}

                def start(name: str, total: int) -> None:
                    running[name] = [0.0, 0.0, 0.0]
                    progress.start(name, total)

                def record(name: str, rec: QueryRecord) -> None:
                    misses.extend(c.error for c in rec.calls if c.error and c.error.startswith("ReplayMissing"))
                    if name == next(iter(running)):  # the first RunLog's answers are shown at the end
                        records.append(rec)
                    stat = running[name]
                    stat[0] += 1
                    stat[1] += rec.score or 0.0
                    stat[2] += rec.total_cost.paid_usd
                    progress.advance(name, f"quality {stat[1] / stat[0]:.3f} · ${stat[2]:.4f}")

                return await run_experiment(exp, models, resume=resume, keep_failed=keep_failed, tracker=tracker, on_record=record,
                                            on_start=start, stop=stop, folder=folder, summary=_summary_files)

    done = asyncio.run(main())
    if tracker is not None:
        console.print(f"MLflow: {redact_uri(tracker.tracking_uri)} (open it with `moa-lab ui`)")
    if replay is not None:
        calls = sum(s.calls for s in done.summaries)
        console.print(f"replay: {calls} calls looked up in {replay}; no model was called", highlight=False)
        if misses:
            console.print(f"[yellow]{len(misses)} calls were not in the recording; the first: {escape(misses[0])}[/]", highlight=False, soft_wrap=True)
    unpriced = sorted(models.prices.unpriced)
    if unpriced:
        console.print(f"[yellow]no list price for {', '.join(unpriced)}: counted as $0 (add them under prices:)[/]")
    return done, records


def _summary_files(folder: Path) -> list[Path]:
    """The parent MLflow run's dashboard: the HTML report of the run folder and its figures."""
    from moa_lab.analysis import runs_report, write_report

    return write_report(runs_report([folder], title=f"moa-lab report: {folder.parent.name}/{folder.name}"), folder / "report")


def _report(exp: Experiment, done: ExperimentRun) -> None:
    from moa_lab.cli._render import show_eval

    show_eval(console, done.summaries)
    console.print(f"run: {done.folder}")
    if done.stopped:
        console.print("[yellow]stopped early: run the same command with --resume to finish[/]")
        raise typer.Exit(130)
    failed, total = sum(s.failed for s in done.summaries), sum(s.samples for s in done.summaries)
    if failed:
        console.print(f"[red]{failed} of {total} samples failed[/] (errors and tracebacks in the RunLogs; --resume runs them again)")
        raise typer.Exit(FAILED_EXIT)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="RunLog A.")],
    run_b: Annotated[Path, typer.Argument(help="RunLog B.")],
) -> None:
    """Paired difference A - B of per-sample scores on the samples both runs scored, with a 95% CI."""
    from moa_lab.scoring import paired_difference
    from moa_lab.tracking import read_runlog

    a, b = read_runlog(run_a).records, read_runlog(run_b).records
    scores_b = {r.id: r.score for r in b if r.score is not None}
    common = [(r.score, scores_b[r.id]) for r in a if r.score is not None and r.id in scores_b]
    if not common:
        raise ConfigError(f"{run_a} and {run_b} share no scored samples")
    diff = paired_difference([x for x, _ in common], [y for _, y in common])
    wins = sum(x > y for x, y in common)
    losses = sum(x < y for x, y in common)
    console.print(f"{len(common)} paired samples: A {sum(x for x, _ in common) / len(common):.3f}, B {sum(y for _, y in common) / len(common):.3f}")
    console.print(f"A - B = {diff.mean:+.3f} ± {diff.stderr:.3f} (95% CI [{diff.low:+.3f}, {diff.high:+.3f}]); A better on {wins}, B on {losses}")


@app.command()
def topologies(show: Annotated[Optional[str], typer.Option(help="Print this preset's arguments (defaults, meaning) and its spec as YAML.")] = None) -> None:
    """List preset topologies and registered agents (docs/presets.md has them all with their arguments)."""
    from moa_lab.cli._reference import KINDS, describe

    if show:
        doc = describe("topology", show)
        # the arguments as YAML comments: the output stays a topology file
        lines = [f"# {show}: {doc.description}", "# arguments (preset: NAME plus any of these):"]
        for a in doc.arguments:
            default = "required" if a.default is None else f"default {a.default}"
            lines.append(f"#   {a.name:<14} {default:<22} {a.meaning}")
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
        console.print(to_yaml(load_topology(show)), markup=False, highlight=False)
        return
    for kind, title in KINDS:
        console.print(f"[bold]{title}[/]")
        for name in names(kind):
            console.print(f"  {name:<24} {describe(kind, name).description}", markup=False, highlight=False)


def main() -> None:
    """Entry point: one-line errors with the fix, a traceback only with --debug."""
    try:
        code = app(standalone_mode=False)  # click returns an Exit's code in this mode
        sys.exit(code if isinstance(code, int) else 0)
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
        message = str(exc) if isinstance(exc, (ConfigError, StoreDamaged)) else f"{type(exc).__name__}: {exc}"
        print(f"error: {redact_uri(message)}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        sys.exit(2)
