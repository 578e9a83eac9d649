"""`moa-lab data list|pull`: the recorded datasets, fetched from their public sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from moa_lab.cli._app import app, console
from moa_lab.evaluation import project_root

data_app = typer.Typer(no_args_is_help=True, help="Recorded datasets: list them, pull them from their public sources.")
app.add_typer(data_app, name="data")


@data_app.command("list")
def list_() -> None:
    """Every dataset, where it was found (first of: $MOA_LAB_DATA, the user cache, ../shared/data)."""
    from moa_lab.benchmarks import data_roots, datasets

    roots = data_roots(project_root(Path.cwd()))
    table = Table(box=None)
    for col in ("dataset", "files", "found in", "description"):
        table.add_column(col, overflow="fold")
    for ds in datasets().values():
        found = next((str(r) for r in roots if (r / ds.name).is_dir()), "- (moa-lab data pull " + ds.name + ")")
        published = sum(f.source is not None for f in ds.files)
        table.add_row(ds.name, f"{published}/{len(ds.files)}", found, ds.description)
    console.print(table)
    console.print("files: published files / all files (the rest exist only in a shared data folder, see `data pull`)")


@data_app.command("pull")
def pull_(
    names: Annotated[list[str], typer.Argument(help="Datasets to fetch (see `moa-lab data list`).")],
    mirror: Annotated[Optional[str], typer.Option(help="Base URL serving the sources' layout <owner>/<repo>/<ref>/<path> "
                                                       "(default: $MOA_LAB_DATA_MIRROR, else raw.githubusercontent.com).")] = None,
    dest: Annotated[Optional[Path], typer.Option(help="Folder to write NAME/ into (default: $MOA_LAB_DATA, else the user cache's data/).")] = None,
) -> None:
    """Fetch datasets from their public sources, convert them to the layout the loaders read and
    check each file's sha256; files already present and correct are kept."""
    from moa_lab.benchmarks import pull

    for name in names:
        done = pull(name, dest=dest, mirror=mirror, on_file=lambda path, name=name: console.print(f"  {name}/{path}", highlight=False))
        console.print(f"{name}: {len(done.fetched)} fetched, {len(done.present)} already present -> {done.folder}", highlight=False)
        if done.unpublished:
            console.print(f"  not published as such (only in a shared data folder): {', '.join(done.unpublished)}", highlight=False)
