"""Test doubles shipped with the package: a scripted model client, a hash embedder and a real local
OpenAI-compatible HTTP server with controllable latency and injected failures."""

from moa_lab.embedding import HashEmbedder  # the dependency-free embedder tests route with
from moa_lab.testing._faults import Fault, ServedCall
from moa_lab.testing._http_server import OpenAITestServer
from moa_lab.testing._scripted import ScriptedClient

__all__ = ["Fault", "HashEmbedder", "OpenAITestServer", "ScriptedClient", "ServedCall"]
