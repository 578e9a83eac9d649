"""The `moa-lab` command line."""

from moa_lab.cli import _pareto, _search  # noqa: F401 - register `search` and `pareto` on the app
from moa_lab.cli._app import app, main

__all__ = ["app", "main"]
