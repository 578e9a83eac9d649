"""`moa-lab analyze` and `moa-lab report`: the paper's analyses from RunLogs, and a static HTML page."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moa_lab.cli._app import app, console
from moa_lab.core import ConfigError


class What(str, Enum):
    proposers = "proposers"
    ranker = "ranker"
    layers = "layers"
    roles = "roles"
    similarity = "similarity"
    cost = "cost"
    length = "length"


NoMlflow = Annotated[bool, typer.Option("--no-mlflow", help="Do not log the PNG and CSV to MLflow.")]
TrackingUri = Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: the project's mlruns/mlflow.db).")]


@app.command()
def analyze(
    what: Annotated[What, typer.Argument(help="Which analysis.")],
    runs: Annotated[list[Path], typer.Argument(help="RunLogs (.jsonl) or run folders (runs/<name>/latest).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for the PNG and CSV (default: analysis/ beside the first run).")] = None,
    extractor: Annotated[Optional[str], typer.Option(help="proposers: the vote key (default: answer for numeric scorers, else normalized).")] = None,
    subsets: Annotated[int, typer.Option(help="proposers: at most this many n-subsets per n (seeded sample).")] = 100,
    quality_csv: Annotated[Optional[Path], typer.Option(help="cost, similarity: a CSV whose column stands in for unscored runs' quality.")] = None,
    quality_column: Annotated[str, typer.Option(help="The quality column of --quality-csv.")] = "length_controlled_winrate",
    match: Annotated[Optional[list[str]], typer.Option(help="cost, similarity: LABEL=NAME, the --quality-csv row of a run (repeat).")] = None,
    aggregate: Annotated[Optional[list[str]], typer.Option(help="similarity: label of a run whose answers are aggregates (repeat).")] = None,
    embedder: Annotated[str, typer.Option(help="similarity: embedder for the cosine (minilm, hash).")] = "minilm",
    no_mlflow: NoMlflow = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Run one analysis over RunLogs: writes `<what>.png` and `<what>.csv` and prints what it found."""
    from moa_lab import analysis
    from moa_lab.analysis._report import default_extractor

    logs = analysis.runlogs(runs)
    aliases = dict(m.split("=", 1) for m in match or ())
    external = analysis.external_quality(quality_csv, quality_column, logs, aliases=aliases) if quality_csv else None
    if external is not None:
        for label, (name, value) in external.items():
            console.print(f"[dim]{label}: quality {value:.2f} from {quality_csv.name if quality_csv else ''} row {name!r}[/]")
    result: Any
    if what is What.proposers:
        from moa_lab.registry import build

        extract = build("extractor", extractor, where="--extractor") if extractor else default_extractor(logs)
        result = analysis.proposers(logs, extract, max_subsets=subsets)
    elif what is What.cost:
        result = analysis.cost(logs, external=external, quality_name=quality_column if external else "quality")
    elif what is What.similarity:
        from moa_lab.embedding import build_embedder

        result = analysis.similarity(logs, build_embedder(embedder), aggregates=aggregate or (), external=external)
    else:
        result = getattr(analysis, what.value)(logs)
    folder = out or _default_out(runs[0])
    png, table = result.write(folder)
    for note in result.notes:
        console.print(note, markup=False)
    console.print(f"figure: {png}\ntable:  {table}")
    if not no_mlflow:
        _log(f"analyze {what.value}", [png, table], {"analysis": what.value, "runs": [str(r) for r in runs]}, tracking_uri, runs[0])


@app.command()
def report(
    source: Annotated[list[Path], typer.Argument(help="RunLogs or run folders, or one experiment YAML with a search: section (its study).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for report.html, summary.csv and the figures.")] = None,
    storage: Annotated[Optional[str], typer.Option(help="A study's Optuna storage URL, if not the default journal.")] = None,
    no_mlflow: NoMlflow = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """One static HTML page (no server): specs, numbers with CIs, every figure, a study's front and
    best configuration as YAML, cost and budget use."""
    from moa_lab.analysis import runs_report, study_report, write_report

    if len(source) == 1 and source[0].suffix in (".yaml", ".yml"):
        from moa_lab.evaluation import Experiment

        exp = Experiment.load(source[0])
        if exp.spec.search is None:
            raise ConfigError(f"{source[0]}: not a search experiment; give its run folder (runs/<name>/latest) instead")
        folder = out or exp.output_dir() / exp.spec.name / "report"
        result = study_report(exp, folder, storage)
    else:
        folder = out or _default_out(source[0], "report")
        result = runs_report(source)
    files = write_report(result, folder)
    console.print(f"report: {files[0]}  ({len(result.analyses)} figures, {len(result.rows)} runs)")
    if not no_mlflow:
        _log("report", files, {"report": [str(s) for s in source]}, tracking_uri, source[0])


def _default_out(first: Path, name: str = "analysis") -> Path:
    base = first.resolve() if first.is_dir() else first.resolve().parent
    return base / name


def _log(name: str, files: list[Path], params: dict[str, Any], tracking_uri: str | None, near: Path) -> None:
    from moa_lab.evaluation import project_root
    from moa_lab.tracking import MlflowTracker

    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="moa-lab-analysis", project_root=project_root(near.resolve()), traces=False)
    run_id = tracker.start_run(name, params=params, tags={"moa_lab.kind": "analysis"})
    for f in files:
        tracker.log_artifact(f)
    tracker.end_run()
    console.print(f"[dim]logged to MLflow run {run_id} ({tracker.tracking_uri})[/]")
