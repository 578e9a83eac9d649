"""`moa-lab record export`: a run's calls as a replay dataset that serves the run at every layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moa_lab.cli._app import app, console

record_app = typer.Typer(no_args_is_help=True, help="Recordings: a run's calls as a replay dataset.")
app.add_typer(record_app, name="record")


@record_app.command("export")
def export(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (e.g. runs/NAME/latest) or RunLog files.", metavar="RUN")],
    out: Annotated[Path, typer.Option(help="The recording folder to write (calls.jsonl, recording.json).")],
) -> None:
    """Write every call of the runs (all layers and judges, any endpoint) as a replay dataset:
    `moa-lab eval EXPERIMENT --replay OUT` then runs the same experiment with no model call, or an
    endpoint `{kind: replay, paths: [OUT]}` serves it."""
    from moa_lab.evaluation import export_recording

    done = export_recording(runs, out)
    console.print(f"{_n(done.calls, 'call')} of {_n(done.queries, 'query', 'queries')} from {_n(len(done.runlogs), 'RunLog')} "
                  f"-> {done.calls_file}", highlight=False)
    for model, n in sorted(done.models.items()):
        console.print(f"  {model}: {n}", highlight=False)
    if done.repeats:
        console.print(f"{_n(done.repeats, 'call')} answered from the cache what a written call had (kept once)", highlight=False)
    if done.conflicts:
        console.print(f"{_n(done.conflicts, 'call')} repeated a written request with another answer (made without the cache): "
                      "each is kept, and a replay serves them in run order", highlight=False)
    if done.failed:
        console.print(f"{_n(done.failed, 'call')} failed: no answer to record, so a replay misses them as the run did", highlight=False)
    for path, n in done.unreplayable.items():
        console.print(f"[yellow]{path}: {_n(n, 'call')} left out: recorded by an older moa-lab without their sampling and sample "
                      "index; a replay misses them (run it again to export them)[/]", highlight=False)


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"
