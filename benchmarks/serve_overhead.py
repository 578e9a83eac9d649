"""Serving overhead: the same queries through `moa-lab serve` over HTTP and run in-process, side by side.

The topology is a 2-layer MoA (3 proposers, an aggregator: 4 calls per query) on a scripted model
that answers at once (`--latency 0`, the default: every millisecond measured is moa-lab's own) or
after `--latency` seconds per call (a model's own time, during which the server's work overlaps).

Each round sends `--concurrency` queries at once (20 by default), first in-process, then to the
server, so load from the rest of a shared machine falls on both sides alike:

- in-process: `Pipeline.run_query` on the same topology and scripted model, in this process, the
  RunLog written too, on the same kind of event loop as the server's (uvloop when it is installed,
  as uvicorn picks it) and with the objects alive at the start frozen out of the garbage
  collector's reach as `moa-lab serve` does, so neither is counted for or against the server.
- served (raw HTTP): the `moa-lab serve` stack (`serve()` as the command runs it: uvicorn, request
  lines logged to a file, RunLog on) in its own process, asked by a minimal HTTP/1.1 client
  (keep-alive, one connection per concurrent request) whose own CPU cost is small and is reported.
- served (openai client): the same server asked by `openai.AsyncOpenAI`, what an application uses;
  its extra latency is the client library's own CPU (`--openai-rounds 0` leaves it out).

A request's latency runs from just before it is sent to its parsed answer; the first round of each
side warms up and is not counted. The overhead is p50(served, raw HTTP) - p50(in-process), each
p50 over every request of every round; the spread of the same difference over blocks of rounds
shows how much the machine's other load moved it. On a shared machine the CPU time is the steadier
figure: the server process's CPU per request (from /proc) against this process's CPU per
in-process query. The load average is read at every round.

    python benchmarks/serve_overhead.py [--rounds 30] [--concurrency 20] [--latency 0] [--openai-rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from importlib.util import find_spec
from pathlib import Path

import moa_lab as moa
from moa_lab.models import ModelSet
from moa_lab.serving._server import freeze_startup_objects
from moa_lab.testing import ScriptedClient
from moa_lab.tracking import RunHeader, RunLogWriter

SERVER = """
import sys
from pathlib import Path
import moa_lab as moa
from moa_lab.models import ModelSet
from moa_lab.serving import ServedTopology, Service, create_app, serve
from moa_lab.testing import ScriptedClient

models = ModelSet(clients={"fake": ScriptedClient(latency=float(sys.argv[3]))}, cache=None)
spec = moa.preset("moa", proposers=["fake/a", "fake/b", "fake/c"], layers=2, aggregator="fake/agg", max_tokens=64)
served = ServedTopology("bench", spec, models, runlog=Path(sys.argv[2]) / "served.jsonl")
serve(create_app(Service({"bench": served}, [models])), port=int(sys.argv[1]))  # as `moa-lab serve`: request lines logged
"""

BLOCK = 10
"""Rounds per block for the spread of the overhead."""


def topology() -> moa.TopologySpec:
    return moa.preset("moa", proposers=["fake/a", "fake/b", "fake/c"], layers=2, aggregator="fake/agg", max_tokens=64)


def stack() -> tuple[str, str]:
    """The event loop and HTTP parser uvicorn picks on its own (`loop="auto"`, `http="auto"`)."""
    return ("uvloop" if find_spec("uvloop") else "asyncio"), ("httptools" if find_spec("httptools") else "h11")


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def question(i: int) -> str:
    return f"Question number {i}?"


class InProcess:
    """The topology run in this process, each record written to a RunLog as a run writes it."""

    def __init__(self, folder: Path, latency: float) -> None:
        spec = topology()
        self.pipeline = moa.Pipeline(spec, ModelSet(clients={"fake": ScriptedClient(latency=latency)}, cache=None))
        self.log = RunLogWriter(folder / "in_process.jsonl", RunHeader(label="bench", topology=spec.model_dump(mode="json"), samples=0))

    async def ask(self, i: int) -> None:
        record = await self.pipeline.run_query(moa.Sample(question(i), id=str(i)))
        self.log.write(record)
        assert record.answer is not None, record.error


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on one connection: next to no client-side CPU, so what
    it measures is the server (an HTTP library costs 1-2 ms of CPU a request on this machine)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        host, port = base_url.split("//")[1].split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        assert headers.startswith(b"HTTP/1.1 200"), headers[:100]
        length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return await self.reader.readexactly(length)


class RawClient:
    """One RawConnection per concurrent request."""

    def __init__(self, base_url: str, connections: list[RawConnection]) -> None:
        self.path = "/" + base_url.split("//")[1].split("/", 1)[1] + "/chat/completions"
        self.connections = connections
        self.free = list(connections)

    @classmethod
    async def open(cls, base_url: str, concurrency: int) -> RawClient:
        return cls(base_url, [await RawConnection.open(base_url) for _ in range(concurrency)])

    async def ask(self, i: int) -> None:
        conn = self.free.pop()
        try:
            body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": question(i)}]}).encode()
            assert json.loads(await conn.post(self.path, body))["choices"][0]["message"]["content"]
        finally:
            self.free.append(conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.writer.close()


async def burst(ask: Callable[[int], Awaitable[None]], first: int, concurrency: int) -> list[float]:
    """`concurrency` queries sent at once; the latency of each."""

    async def one(i: int) -> float:
        start = time.perf_counter()
        await ask(i)
        return time.perf_counter() - start

    return list(await asyncio.gather(*(one(first + i) for i in range(concurrency))))


def start_server(folder: Path, latency: float) -> tuple[subprocess.Popen[bytes], str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(folder), str(latency)], stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=1).close()
            return proc, base_url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start (see {folder / 'server.log'})")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Side:
    """What one side measured: per-round latencies, CPU seconds (per process) and requests sent."""

    def __init__(self) -> None:
        self.rounds: list[list[float]] = []
        self.cpu: dict[str, float] = {}
        self.sent = 0

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.rounds for x in r]

    def add_cpu(self, who: str, seconds: float) -> None:
        self.cpu[who] = self.cpu.get(who, 0.0) + seconds


async def measure(args: argparse.Namespace, base_url: str, pid: int, folder: Path) -> tuple[dict[str, Side], list[float]]:
    import openai

    sides = {"in-process": Side(), "served (raw HTTP)": Side(), "served (openai client)": Side()}
    loads: list[float] = []
    local = InProcess(folder, args.latency)
    raw = await RawClient.open(base_url, args.concurrency)
    n = args.concurrency
    async with openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0) as client:

        async def ask_openai(i: int) -> None:
            reply = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": question(i)}])
            assert reply.choices[0].message.content

        freeze_startup_objects()  # as `moa-lab serve` does, so the garbage collector treats both sides alike
        for r in range(args.rounds + 1):
            loads.append(os.getloadavg()[0])
            first = r * n
            side = sides["in-process"]
            cpu = time.process_time()
            got = await burst(local.ask, first, n)
            if r:  # the first round of each side warms up
                side.add_cpu("this process", time.process_time() - cpu)
                side.rounds.append(got)
                side.sent += n
            side = sides["served (raw HTTP)"]
            cpu, server_cpu = time.process_time(), cpu_s(pid)
            got = await burst(raw.ask, first, n)
            if r:
                side.add_cpu("server", cpu_s(pid) - server_cpu)
                side.add_cpu("client", time.process_time() - cpu)
                side.rounds.append(got)
                side.sent += n
            if r <= args.openai_rounds:
                side = sides["served (openai client)"]
                cpu, server_cpu = time.process_time(), cpu_s(pid)
                got = await burst(ask_openai, first, n)
                if r:
                    side.add_cpu("server", cpu_s(pid) - server_cpu)
                    side.add_cpu("client", time.process_time() - cpu)
                    side.rounds.append(got)
                    side.sent += n
    raw.close()
    local.log.close()
    loads.append(os.getloadavg()[0])
    return sides, loads


def report(args: argparse.Namespace, sides: dict[str, Side], loads: list[float], loop: str, http: str) -> None:
    print(f"{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, server on uvicorn ({loop}, {http}), in-process on {loop}; "
          f"load average {min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})")
    print(f"{args.rounds} rounds x {args.concurrency} concurrent requests, 4 scripted calls of {args.latency * 1e3:g} ms "
          f"per query; {sys.executable} {' '.join(sys.argv)}")
    base = sides["in-process"]
    base_p50 = statistics.median(base.latencies)
    print(f"{'':<24}{'answered':>9}{'p50 ms':>9}{'p90 ms':>9}{'p50 - in-process':>18}{'ratio':>7}")
    for name, side in sides.items():
        values = side.latencies
        if not values:
            continue
        p50 = statistics.median(values)
        print(f"{name:<24}{len(values):>5}/{side.sent:<3}{p50 * 1e3:>9.2f}{percentile(values, 90) * 1e3:>9.2f}"
              f"{(p50 - base_p50) * 1e3:>15.2f} ms{p50 / base_p50:>7.1f}")
    served = sides["served (raw HTTP)"]
    blocks = [(statistics.median([x for r in served.rounds[i:i + BLOCK] for x in r])
               - statistics.median([x for r in base.rounds[i:i + BLOCK] for x in r])) * 1e3
              for i in range(0, len(base.rounds), BLOCK)]
    print(f"overhead (raw HTTP) per block of {BLOCK} rounds: " + ", ".join(f"{b:.2f}" for b in blocks) + " ms")
    query = base.cpu["this process"] / base.sent
    server, client = served.cpu["server"] / served.sent, served.cpu["client"] / served.sent
    print(f"CPU per request: in-process query {query * 1e3:.2f} ms; served: server process {server * 1e3:.2f} ms "
          f"(adds {(server - query) * 1e3:.2f} ms, x{server / query:.1f}), raw client {client * 1e3:.2f} ms", end="")
    if sides["served (openai client)"].sent:
        openai_side = sides["served (openai client)"]
        print(f", openai client {openai_side.cpu['client'] / openai_side.sent * 1e3:.2f} ms")
    else:
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each scripted call takes (0: pure overhead)")
    parser.add_argument("--openai-rounds", type=int, default=10, help="rounds also sent by the openai client (0: none)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    loop, http = stack()
    proc, base_url = start_server(folder, args.latency)
    try:
        coro = measure(args, base_url, proc.pid, folder)
        if loop == "uvloop":
            import uvloop

            sides, loads = uvloop.run(coro)
        else:
            sides, loads = asyncio.run(coro)
    finally:
        proc.terminate()
        proc.wait(30)
    report(args, sides, loads, loop, http)


if __name__ == "__main__":
    main()
