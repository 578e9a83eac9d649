"""`moa-lab serve`: topologies as an OpenAI-compatible model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from moa_lab.cli._app import app, console
from moa_lab.core import ConfigError


@app.command()
def serve(
    sources: Annotated[list[str], typer.Argument(help="Experiment YAMLs, topology YAMLs or preset names to serve.",
                                                 metavar="EXPERIMENT_OR_TOPOLOGY...")],
    host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key_env: Annotated[Optional[str], typer.Option(help="Require `Authorization: Bearer $NAME` on every request.")] = None,
    system: Annotated[str, typer.Option(help="A request's system message: ignore (kept in the RunLog) or prepend (to the query).")] = "ignore",
    budget_usd: Annotated[Optional[float], typer.Option(help="Hard $ cap shared by every served topology (replaces the files').")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the call cache.")] = False,
    mlflow: Annotated[Optional[bool], typer.Option("--mlflow/--no-mlflow", help="Trace every request in MLflow (default: as the experiment's tracking: section says).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: the project's mlruns/mlflow.db).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Folder for the runs (default: runs/ in the experiment's project).")] = None,
    grace: Annotated[float, typer.Option(help="Seconds the requests in flight get to finish on SIGINT/SIGTERM.")] = 30.0,
) -> None:
    """Serve topologies as an OpenAI-compatible model: GET /v1/models, POST /v1/chat/completions
    (streaming too). Every request runs with the experiment's cache, limits, retries and budget and
    is logged to <project>/runs/<name>/<time>/served.jsonl. Ctrl-C finishes the requests in flight."""
    from moa_lab.serving import create_app, load_service
    from moa_lab.serving import serve as run_server

    if system not in ("ignore", "prepend"):
        raise ConfigError(f"--system must be ignore or prepend, not {system!r}")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {api_key_env}: ${api_key_env} is not set; export it first (it is never logged)")
    service = load_service(sources, output=output.resolve() if output else None, budget_usd=budget_usd,
                           use_cache=False if no_cache else None, track=mlflow, tracking_uri=tracking_uri)
    base = f"http://{host}:{port}/v1"
    for name, served in service.topologies.items():
        console.print(f"serving [bold]{name}[/] at {base} · RunLog {served.runlog}")
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]{host} is reachable from other machines and no --api-key-env is set[/]")
    run_server(create_app(service, api_key=api_key, system=system), host=host, port=port, grace_s=grace)  # type: ignore[arg-type]
