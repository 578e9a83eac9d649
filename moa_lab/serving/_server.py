"""Running the app with uvicorn: in the foreground (the command line), or on a thread of this
process (tests, benchmarks, a mixture of mixtures in one script)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from typing import Any

GRACE_S = 30.0
"""How long a stopping server waits for the requests in flight before it closes them."""


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, grace_s: float = GRACE_S, log_level: str = "info") -> None:
    """Serve `app` until SIGINT or SIGTERM: the listening socket closes at once, the requests in
    flight get up to `grace_s` seconds to finish, then the app shuts down (its Service closes, which
    stops the embedded server). A second signal stops at once. Request lines are logged, headers
    (the API key) never are."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=grace_s,
                            lifespan="on", server_header=False)
    config.load()  # imports uvicorn's protocol modules now, so that they are frozen too
    freeze_startup_objects()
    uvicorn.Server(config).run()


def freeze_startup_objects() -> None:
    """Put every object alive now (imported libraries, the app, the topologies) out of the garbage
    collector's reach, so that its full collections walk only what requests leave behind.

    A served process holds some 60,000 tracked objects once started; each full collection walked
    them all (about 70 ms on a loaded 2-core machine, 9% of the server's CPU in a stream of
    requests, and a stall for every request in flight). Only the process that serves, never one
    that merely runs a BackgroundServer, does this: a frozen object caught in a reference cycle is
    never freed."""
    gc.collect()
    gc.freeze()


class BackgroundServer:
    """Serves an app on 127.0.0.1 at a free port on a thread with its own event loop.

        with BackgroundServer(create_app(service)) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="none")
    """

    def __init__(self, app: Any, *, grace_s: float = 5.0, log_level: str = "warning") -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=grace_s, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> str:
        """Start serving and return the base URL `http://127.0.0.1:PORT/v1` once it accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the moa-lab server did not start (see its log above)")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        """Stop as a signal would: finish the requests in flight, shut the app down, join the thread."""
        self._server.should_exit = True
        self._thread.join()
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
