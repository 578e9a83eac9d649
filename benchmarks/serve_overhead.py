"""Serving overhead: the same queries through `moa-lab serve`'s app over HTTP and run in-process.

The topology is a 2-layer MoA (3 proposers, an aggregator: 4 calls per query) on a scripted model
that answers at once (`--latency 0`, the default: every millisecond measured is moa-lab's own) or
after `--latency` seconds per call (a model's own time, during which the server's work overlaps). Each round sends 20 requests at
once; a request's latency is measured from just before it is sent to its parsed answer.

- served: the app (FastAPI + uvicorn, the `moa-lab serve` stack, RunLog on) in its own process,
  asked by the `openai` client (AsyncOpenAI) and by a raw HTTP/1.1 client (a few lines on asyncio
  streams, keep-alive, one connection per concurrent request) whose own CPU cost is negligible.
- in-process: `Pipeline.run_query` on the same topology and scripted model, 20 at once, in this
  process (the RunLog written too).

The overhead is p50(served) - p50(in-process); the ratio is p50(served) / p50(in-process). On a
shared machine most of a served request's wall time can be the scheduler (two processes hand the
request back and forth), so the CPU time is reported too: the server process's CPU per request
(from /proc) against this process's CPU per in-process query. Their difference is what the server
itself adds per request, whatever the load.

    python benchmarks/serve_overhead.py [--rounds 30] [--concurrency 20]
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
from pathlib import Path

import moa_lab as moa
from moa_lab.models import ModelSet
from moa_lab.testing import ScriptedClient

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
serve(create_app(Service({"bench": served}, [models])), port=int(sys.argv[1]), log_level="warning")
"""


def topology() -> moa.TopologySpec:
    return moa.preset("moa", proposers=["fake/a", "fake/b", "fake/c"], layers=2, aggregator="fake/agg", max_tokens=64)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def in_process(rounds: int, concurrency: int, folder: Path, latency: float) -> list[float]:
    from moa_lab.tracking import RunHeader, RunLogWriter

    spec = topology()
    models = ModelSet(clients={"fake": ScriptedClient(latency=latency)}, cache=None)
    pipeline = moa.Pipeline(spec, models)
    latencies: list[float] = []
    with RunLogWriter(folder / "in_process.jsonl", RunHeader(label="bench", topology=spec.model_dump(mode="json"), samples=0)) as log:

        async def one(i: int) -> float:
            start = time.perf_counter()
            record = await pipeline.run_query(moa.Sample(f"Question number {i}?", id=str(i)))
            log.write(record)
            assert record.answer is not None, record.error
            return time.perf_counter() - start

        for r in range(rounds + 1):
            got = await asyncio.gather(*(one(r * concurrency + i) for i in range(concurrency)))
            if r:  # the first round warms up
                latencies += got
    return latencies


async def served_openai(base_url: str, rounds: int, concurrency: int) -> list[float]:
    import openai

    latencies: list[float] = []
    async with openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0) as client:

        async def one(i: int) -> float:
            start = time.perf_counter()
            reply = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": f"Question number {i}?"}])
            assert reply.choices[0].message.content
            return time.perf_counter() - start

        for r in range(rounds + 1):
            got = await asyncio.gather(*(one(r * concurrency + i) for i in range(concurrency)))
            if r:
                latencies += got
    return latencies


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


async def served_raw(base_url: str, rounds: int, concurrency: int) -> list[float]:
    path = base_url.split("//")[1].split("/", 1)[1]
    connections = [await RawConnection.open(base_url) for _ in range(concurrency)]
    latencies: list[float] = []

    async def one(conn: RawConnection, i: int) -> float:
        start = time.perf_counter()
        body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": f"Question number {i}?"}]}).encode()
        assert json.loads(await conn.post(f"/{path}/chat/completions", body))["choices"][0]["message"]["content"]
        return time.perf_counter() - start

    for r in range(rounds + 1):
        got = await asyncio.gather(*(one(conn, r * concurrency + i) for i, conn in enumerate(connections)))
        if r:
            latencies += got
    for conn in connections:
        conn.writer.close()
    return latencies


def start_server(folder: Path, latency: float) -> tuple[subprocess.Popen[bytes], str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(folder), str(latency)])
    base_url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=1).close()
            return proc, base_url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each scripted call takes (0: pure overhead)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    proc, base_url = start_server(folder, args.latency)
    try:
        # interleaved, so load from the rest of the machine falls on both sides alike
        results: dict[str, list[float]] = {"in-process": [], "served (openai client)": [], "served (raw HTTP)": []}
        cpu = {"in-process": 0.0, "served (raw HTTP)": 0.0}
        rounds = max(1, args.rounds // 3)
        for _ in range(3):
            start = time.process_time()
            results["in-process"] += asyncio.run(in_process(rounds, args.concurrency, folder, args.latency))
            cpu["in-process"] += time.process_time() - start
            results["served (openai client)"] += asyncio.run(served_openai(base_url, rounds, args.concurrency))
            start = cpu_s(proc.pid)
            results["served (raw HTTP)"] += asyncio.run(served_raw(base_url, rounds, args.concurrency))
            cpu["served (raw HTTP)"] += cpu_s(proc.pid) - start
    finally:
        proc.terminate()
        proc.wait(30)
    base = statistics.median(results["in-process"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), "
          f"Python {platform.python_version()}; {rounds * 3} rounds x {args.concurrency} concurrent requests, "
          f"4 scripted calls of {args.latency * 1e3:g} ms per query")
    print(f"{'':<24}{'answered':>9}{'p50 ms':>9}{'p90 ms':>9}{'p50 - in-process':>18}{'ratio':>7}")
    for name, values in results.items():
        p50 = statistics.median(values)
        print(f"{name:<24}{len(values):>9}{p50 * 1e3:>9.2f}{percentile(values, 90) * 1e3:>9.2f}"
              f"{(p50 - base) * 1e3:>15.2f} ms{p50 / base:>7.1f}")
    # warm-up rounds are included in both CPU totals, so divide by every request sent
    sent = (rounds + 1) * 3 * args.concurrency
    query, server = cpu["in-process"] / sent, cpu["served (raw HTTP)"] / sent
    print(f"CPU per request: in-process query {query * 1e3:.2f} ms, server process {server * 1e3:.2f} ms "
          f"(the server adds {(server - query) * 1e3:.2f} ms, x{server / query:.1f})")


if __name__ == "__main__":
    main()
