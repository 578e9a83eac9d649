"""Serving overhead in CPU instructions: what `serve_overhead.py` measures, counted by valgrind.

On a machine shared with other jobs, wall times and even CPU seconds move with the load (a process
that is preempted and woken often runs slower per instruction). The number of instructions a
request executes does not: this script counts them with valgrind's callgrind, for the same bursts of
queries as `serve_overhead.py`, on each side:

- in-process: `Pipeline.run_query` plus the RunLog write, in a child process under valgrind;
- served: the `moa-lab serve` process (`serve()`, request lines logged) under valgrind, asked by the
  raw HTTP client from this process (not counted).

Each side is started, warmed up with one burst, its counters are zeroed, `--requests` queries go
through it in bursts of `--concurrency`, and the counters are dumped. Needs `valgrind` (Debian's
package); a few minutes, as everything runs some 50 times slower under valgrind.

    python benchmarks/serve_instructions.py [--requests 400] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_overhead import SERVER, RawClient, burst, stack  # noqa: E402

CHILD = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from serve_overhead import InProcess, burst, stack
from moa_lab.serving._server import freeze_startup_objects

async def main(requests, concurrency):
    local = InProcess(Path(sys.argv[2]), 0.0)
    await burst(local.ask, 0, concurrency)
    freeze_startup_objects()
    print("ready", flush=True)
    sys.stdin.readline()
    for first in range(0, requests, concurrency):
        await burst(local.ask, first, concurrency)
    print("done", flush=True)
    sys.stdin.readline()

coro = main(int(sys.argv[3]), int(sys.argv[4]))
if stack()[0] == "uvloop":
    import uvloop
    uvloop.run(coro)
else:
    asyncio.run(coro)
"""


def valgrind(args: list[str], out: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--log-file=/dev/null",
                             sys.executable, *args], text=True, **kwargs)  # type: ignore[call-overload]


def callgrind(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def counted(out: Path) -> int:
    """Instructions in the dump taken after the counters were zeroed (`<out>.1`)."""
    for line in Path(f"{out}.1").read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"{out}.1 has no summary line")


def in_process(folder: Path, requests: int, concurrency: int) -> int:
    out = folder / "in_process.callgrind"
    child = valgrind(["-c", CHILD, str(Path(__file__).parent), str(folder), str(requests), str(concurrency)], out,
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    callgrind("--zero", child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "done"
    callgrind("--dump", child.pid)
    child.stdin.close()
    child.wait(600)
    return counted(out)


def served(folder: Path, requests: int, concurrency: int) -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = folder / "served.callgrind"
    log = (folder / "server.log").open("wb")
    server = valgrind(["-c", SERVER, str(port), str(folder), "0"], out, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 900
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"the server did not start (see {folder / 'server.log'})") from None
            time.sleep(1)

    async def ask(first: int, count: int) -> None:
        client = await RawClient.open(base_url, concurrency)
        for start in range(first, first + count, concurrency):
            await burst(client.ask, start, concurrency)
        client.close()

    try:
        asyncio.run(ask(0, concurrency))
        callgrind("--zero", server.pid)
        asyncio.run(ask(concurrency, requests))
        callgrind("--dump", server.pid)
    finally:
        server.terminate()
        server.wait(600)
    return counted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("serve_instructions.py: valgrind is not installed; install it (apt-get install valgrind)")
    folder = Path(tempfile.mkdtemp(prefix="serve-instructions-"))
    os.environ["PYTHONHASHSEED"] = "0"  # the same dict layouts in every run
    local = in_process(folder, args.requests, args.concurrency) / args.requests
    server = served(folder, args.requests, args.concurrency) / args.requests
    loop, http = stack()
    print(f"Python {sys.version.split()[0]}, server on uvicorn ({loop}, {http}), in-process on {loop}; "
          f"{args.requests} requests in bursts of {args.concurrency}, 4 scripted calls of 0 ms per query")
    print(f"instructions per request: in-process {local / 1e6:.3f} M, server process {server / 1e6:.3f} M "
          f"(adds {(server - local) / 1e6:.3f} M, x{server / local:.2f})")


if __name__ == "__main__":
    main()
