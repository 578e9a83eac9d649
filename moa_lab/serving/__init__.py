"""Serving: a topology as an OpenAI-compatible model (`moa-lab serve`).

`load_service` builds the served topologies from experiment files, topology files or presets;
`create_app` makes the ASGI app (FastAPI, with the chat route answered directly); `serve` runs it with uvicorn (`BackgroundServer` on a thread).
FastAPI and uvicorn are imported only when an app is made or run.
"""

from moa_lab.serving._app import create_app
from moa_lab.serving._chat import ChatRequest, RequestError, SystemPolicy, to_sample
from moa_lab.serving._served import ServedTopology, Service, load_service
from moa_lab.serving._server import BackgroundServer, serve

__all__ = [
    "BackgroundServer",
    "ChatRequest",
    "RequestError",
    "ServedTopology",
    "Service",
    "SystemPolicy",
    "create_app",
    "load_service",
    "serve",
    "to_sample",
]
