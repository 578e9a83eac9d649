"""The `moa-lab` command line."""

from moa_lab.cli import _analyze  # noqa: F401 - registers `analyze` and `report` on the app
from moa_lab.cli import _search  # noqa: F401 - registers `search` and `pareto` on the app
from moa_lab.cli._app import app, main

__all__ = ["app", "main"]
