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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from moa_lab.cli._router import router_app
from moa_lab.cli._render import show_answers, show_query, show_summary
from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation import Experiment, run_experiment
from moa_lab.models import Budget, MemoryCache, ModelSet, SqliteCache, default_cache_dir
from moa_lab.pipeline import Pipeline, QueryResult
from moa_lab.registry import lookup, names
from moa_lab.topology import load_topology, to_yaml

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Mixture-of-Agents research framework.")
app.add_typer(router_app, name="router")
# piped output (CI logs, files) gets room for the result tables instead of rich's 80 columns
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
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
    if exp.topology is None:
        raise ConfigError(f"{experiment}: `moa-lab run` needs a topology (use `moa-lab eval` or `moa-lab search`)")
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
                    finished.append(result)
                    spent["usd"] += result.cost.usd
                    spent["failed"] += result.error is not None
                    spent["calls"] += len(result.calls)
                    spent["cached"] += len(result.calls) - result.new_calls
                    stats = f"${spent['usd']:.4f} · {spent['cached']}/{spent['calls']} cached · {spent['failed']} failed"
                    progress.update(task, advance=1, stats=stats)

                return await run_experiment(exp, models, runlog=output, on_result=tick)

    finished: list[QueryResult] = []
    summary = asyncio.run(main())
    show_answers(console, finished)
    show_summary(console, summary)


@app.command("eval")
def eval_(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML with a benchmark (see experiments/).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue killed runs: finished samples are kept.")] = False,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Write RunLogs only.")] = False,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: the project's mlruns/mlflow.db).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")] = False,
    concurrency: Annotated[Optional[int], typer.Option(help="Queries in flight at once.")] = None,
    scorer: Annotated[Optional[str], typer.Option(help="Override the scorer (YAML: a name or {kind: ..., ...}).")] = None,
) -> None:
    """Evaluate every topology of an experiment on its benchmark; print quality with CIs, cost, latency."""
    from moa_lab.cli._render import show_eval
    from moa_lab.evaluation import project_root, run_suite

    exp = Experiment.load(experiment, concurrency=concurrency, scorer=yaml.safe_load(scorer) if scorer else None)
    models = exp.model_set(use_cache=False if no_cache else None)
    tracker = None
    tracking = exp.spec.tracking
    if tracking.mlflow and not no_mlflow:
        from moa_lab.tracking import MlflowTracker

        tracker = MlflowTracker(tracking_uri=tracking_uri or tracking.tracking_uri, experiment=tracking.experiment or exp.spec.name,
                                project_root=project_root(exp.folder), traces=tracking.traces is not False)
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn())

    stop_requested = {"flag": False}

    async def main() -> Any:
        import signal

        stop = asyncio.Event()

        def request_stop() -> None:
            if stop.is_set():  # a second signal: stop now
                raise KeyboardInterrupt
            stop_requested["flag"] = True
            stop.set()
            console.print("[yellow]stopping: finishing the queries in flight (again to abort)…[/]")

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, request_stop)
        async with models:
            with Progress(*columns, console=console) as progress:
                bars: dict[str, Any] = {}
                running: dict[str, list[float]] = {}

                def start(name: str, total: int) -> None:
                    bars[name] = progress.add_task(name, total=total, stats="")
                    running[name] = [0.0, 0.0, 0.0]

                def record(name: str, rec: dict[str, Any]) -> None:
                    stat = running[name]
                    stat[0] += 1
                    stat[1] += float(rec.get("score") or 0.0)
                    stat[2] += float(rec["cost_usd"]) + float(rec.get("judge_cost_usd", 0.0))
                    progress.update(bars[name], advance=1, stats=f"quality {stat[1] / stat[0]:.3f} · ${stat[2]:.4f}")

                return await run_suite(exp, models, resume=resume, tracker=tracker, on_record=record, on_start=start, stop=stop)

    summaries = asyncio.run(main())
    show_eval(console, summaries)
    if tracker is not None:
        console.print(f"MLflow: {tracker.tracking_uri} (open it with `moa-lab ui`)")
    if stop_requested["flag"]:
        console.print("[yellow]stopped early: run the same command with --resume to finish[/]")
        raise typer.Exit(130)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="RunLog A.")],
    run_b: Annotated[Path, typer.Argument(help="RunLog B.")],
) -> None:
    """Paired difference A - B of per-sample scores on the samples both runs scored, with a 95% CI."""
    from moa_lab.scoring import paired_difference
    from moa_lab.tracking import read_runlog

    _, a = read_runlog(run_a)
    _, b = read_runlog(run_b)
    scores_b = {r["id"]: r["score"] for r in b if r.get("score") is not None}
    common = [(float(r["score"]), float(scores_b[r["id"]])) for r in a if r.get("score") is not None and r["id"] in scores_b]
    if not common:
        raise ConfigError(f"{run_a} and {run_b} share no scored samples")
    diff = paired_difference([x for x, _ in common], [y for _, y in common])
    wins = sum(x > y for x, y in common)
    losses = sum(x < y for x, y in common)
    console.print(f"{len(common)} paired samples: A {sum(x for x, _ in common) / len(common):.3f}, B {sum(y for _, y in common) / len(common):.3f}")
    console.print(f"A - B = {diff.mean:+.3f} ± {diff.stderr:.3f} (95% CI [{diff.low:+.3f}, {diff.high:+.3f}]); A better on {wins}, B on {losses}")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    tracking_uri: Annotated[Optional[str], typer.Option(help="Store to show (default: ./mlruns/mlflow.db).")] = None,
) -> None:
    """Open the MLflow UI on the project's store."""
    import subprocess

    from moa_lab.evaluation import project_root
    from moa_lab.tracking import default_artifact_location, default_tracking_uri

    root = project_root(Path.cwd())
    uri = tracking_uri or default_tracking_uri(root)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port)]
    if tracking_uri is None:
        cmd += ["--default-artifact-root", default_artifact_location(root)]
    console.print(f"MLflow UI on http://127.0.0.1:{port} for {uri} (Ctrl-C stops it)")
    raise typer.Exit(subprocess.call(cmd))


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML with a search: section.")],
    trials: Annotated[Optional[int], typer.Option(help="Trials to finish (default: the file's).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: a journal file in the study folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped study.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine sharing the study.")] = 1,
) -> None:
    """Search topologies with Optuna under the study's hard budget; prints each trial and the front."""
    from moa_lab.search import load_study, open_study, pareto as front, run_study

    exp = Experiment.load(experiment)
    models = exp.model_set()
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
        message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {message}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        sys.exit(2)
