"""A real local OpenAI-compatible HTTP server with controllable latency and injected failures.

Serves `POST /v1/chat/completions`, `POST /v1/completions` and `GET /v1/models` on 127.0.0.1 from
a `ThreadingHTTPServer` in a daemon thread, so tests and benchmarks drive the real `openai` client.

Usage is counted in words, deterministically (the same rule as `ScriptedClient`):
`prompt_tokens` = whitespace-separated words over all message contents (or the prompt) + 4 per
message (a prompt counts as one message); `completion_tokens` = words in the reply. When
`max_tokens` (or `max_completion_tokens`) is below the reply's word count, the reply is cut to
that many words and `finish_reason` is `"length"`.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODEL_ID = "moa-lab-test"


@dataclass(frozen=True)
class Fault:
    """A failure to inject into one answer.

    `status`: answer HTTP `status` with a JSON error body (and `Retry-After: retry_after` when set).
    `timeout`: sleep `delay` seconds, then answer normally (the client should have given up).
    `malformed`: answer 200 `application/json` whose body is the invalid JSON `{"choices": [`.
    `trickle`: answer normally, but write the body one byte every `interval` seconds (headers at
    once), so only a deadline on the whole attempt stops the client waiting.
    `retry_after_date`: with `status`, send Retry-After as an HTTP date (`retry_after` seconds ahead).
    """

    kind: Literal["status", "timeout", "malformed", "trickle"]
    status: int = 500
    retry_after: float | None = None
    delay: float = 30.0
    interval: float = 1.0
    retry_after_date: bool = False


@dataclass
class ServedCall:
    """One completion request the server received; times are `time.perf_counter()` seconds.

    `finished` is when the answer was written (taken just before its last byte, so a client that
    holds the answer sees the call finished), `nan` while it is still being handled (or if
    `stop()` or a hang-up cut it short).
    """

    path: str
    model: str
    body: dict[str, Any]
    fault: Fault | None
    started: float
    finished: float = math.nan


class OpenAITestServer:
    """An OpenAI-compatible server on 127.0.0.1 (a random port) for tests and benchmarks.

    `latency`: seconds slept before every answer, in the handler thread (requests overlap).
    `responder(body)`: the reply text; default `f"{model} says {sha1(json of messages or prompt)[:8]}"`.
    `faults(body, attempt)`: a Fault to inject, or None; `attempt` counts earlier requests with an
    identical body to the same path (0 for the first).
    `calls` lists every completion request in arrival order; `max_in_flight` is the most requests
    handled at once. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, *, latency: float = 0.0, responder: Callable[[dict[str, Any]], str] | None = None,
                 faults: Callable[[dict[str, Any], int], Fault | None] | None = None) -> None:
        self.latency = latency
        self.responder = responder
        self.faults = faults
        self.base_url = ""
        self.calls: list[ServedCall] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._attempts: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None

    def start(self) -> str:
        """Start serving (if not already) and return the base URL `http://127.0.0.1:PORT/v1`."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _Server(("127.0.0.1", 0), _Handler)
            self._httpd.owner = self
            # a short poll interval: shutdown() waits for the serve loop to notice the request
            threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
            self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        return self.base_url

    def stop(self) -> None:
        """Stop serving; returns promptly, waking handlers that sleep and closing open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()  # returns once the serve loop has ended
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive handlers block in recv until their socket closes
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        """Forget the calls and attempt counts; `max_in_flight` restarts from the requests in flight now."""
        with self._lock:
            self.calls.clear()
            self._attempts.clear()
            self.max_in_flight = self._in_flight

    def __enter__(self) -> OpenAITestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, handler: _Handler, path: str, body: dict[str, Any]) -> None:
        key = path + json.dumps(body, sort_keys=True)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        call: ServedCall | None = None
        served = False

        def done() -> None:  # runs before the last byte goes out: a client holding its answer sees it done
            nonlocal served
            with self._lock:
                served = True
                self._in_flight -= 1
                if call is not None:
                    call.finished = time.perf_counter()

        try:
            fault = self.faults(body, attempt) if self.faults else None
            call = ServedCall(path, str(body.get("model", "")), body, fault, time.perf_counter())
            with self._lock:
                self.calls.append(call)
            delay = self.latency + (fault.delay if fault is not None and fault.kind == "timeout" else 0.0)
            if delay > 0 and self._stopping.wait(delay):  # stop() woke this handler: do not answer
                handler.close_connection = True
                return
            if fault is not None and fault.kind == "status":
                headers = {} if fault.retry_after is None else {"Retry-After": _retry_after(fault)}
                handler.send(fault.status, _error(f"injected fault: HTTP {fault.status}", fault.status), headers, before_last=done)
            elif fault is not None and fault.kind == "malformed":
                handler.send(200, b'{"choices": [', before_last=done)
            elif fault is not None and fault.kind == "trickle":
                handler.send(200, self._answer(path, body), before_last=done, interval=fault.interval, stopping=self._stopping)
            else:
                handler.send(200, self._answer(path, body), before_last=done)
        finally:
            if not served:  # cut short (stop() or the client hung up): `finished` stays nan
                with self._lock:
                    self._in_flight -= 1

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model", ""))
        chat = path == CHAT_PATH
        messages = body.get("messages") or []
        prompt_words = sum(_words(m.get("content")) + 4 for m in messages) if chat else _words(body.get("prompt")) + 4
        if self.responder is not None:
            text = self.responder(body)
        else:
            source = json.dumps(messages if chat else body.get("prompt"), sort_keys=True)
            text = f"{model} says {hashlib.sha1(source.encode()).hexdigest()[:8]}"
        finish = "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and _words(text) > limit:
            text, finish = " ".join(text.split()[:limit]), "length"
        usage = {"prompt_tokens": prompt_words, "completion_tokens": _words(text), "total_tokens": prompt_words + _words(text)}
        if chat:
            message = {"role": "assistant", "content": text}
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
            kind, prefix = "chat.completion", "chatcmpl"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            kind, prefix = "text_completion", "cmpl"
        return {"id": f"{prefix}-{next(self._ids)}", "object": kind, "created": int(time.time()), "model": model,
                "choices": [choice], "usage": usage}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 resets (or delays by 1 s) bursts of concurrent connects
    owner: OpenAITestServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # with Content-Length on every answer, so connections are kept alive
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would hold the body ~40 ms

    @property
    def owner(self) -> OpenAITestServer:
        return cast(_Server, self.server).owner

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client hung up (it timed out) or stop() closed the socket
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "moa-lab"}
            self.send(200, {"object": "list", "data": [model]})
        else:
            self.send(404, _error(f"no route GET {self.path}", 404))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # always read: keep-alive stays in step
        path = self.path.split("?")[0].rstrip("/")
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
        if path not in (CHAT_PATH, COMPLETIONS_PATH):
            self.send(404, _error(f"no route POST {self.path}", 404))
        elif not isinstance(body, dict):
            self.send(400, _error("the request body is not a JSON object", 400))
        else:
            try:
                self.owner._serve(self, path, body)
            except Exception as exc:  # a failing responder or faults callable shows as a 500, not a hang-up
                self.send(500, _error(f"test server callback failed: {exc!r}", 500))

    def send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None, *,
             before_last: Callable[[], None] | None = None, interval: float = 0.0,
             stopping: threading.Event | None = None) -> None:
        """Answer with a JSON object, or with raw bytes labelled as JSON (for malformed answers).

        `before_last` runs just before the last byte is written; `interval` > 0 writes the body one
        byte at a time that many seconds apart (until `stopping` is set)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if interval > 0:
            self.wfile.flush()
            for i in range(len(data) - 1):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                if stopping is not None and stopping.wait(interval):
                    self.close_connection = True
                    return
        else:
            self.wfile.write(data[:-1])
        if before_last is not None:
            before_last()
        self.wfile.write(data[-1:])


def _retry_after(fault: Fault) -> str:
    if fault.retry_after_date:
        return email.utils.formatdate(time.time() + (fault.retry_after or 0.0), usegmt=True)
    return f"{fault.retry_after:g}"


def _error(message: str, status: int) -> dict[str, Any]:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind}}


def _words(content: Any) -> int:
    """Whitespace-separated words in a string, in text content parts, or in a list of prompts."""
    if isinstance(content, list):  # content parts [{"type": "text", "text": ...}] or a batch of prompts
        content = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return len(str(content or "").split())
