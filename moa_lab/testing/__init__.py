"""Test doubles shipped with the package: a scripted model client and a real local
OpenAI-compatible HTTP server with controllable latency and injected failures."""

from moa_lab.testing._http_server import Fault, OpenAITestServer, ServedCall
from moa_lab.testing._scripted import ScriptedClient

__all__ = ["Fault", "OpenAITestServer", "ScriptedClient", "ServedCall"]
