"""The `moa-lab` command line."""

from moa_lab.cli._app import app, main

__all__ = ["app", "main"]
