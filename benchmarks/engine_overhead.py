"""Engine overhead: moa-lab against a local OpenAI-compatible server that answers after a fixed latency d.

1. Per query: a 3-layer MoA (6 proposers, 6 proposers, aggregator) one query at a time. The critical
   path is 3 x d; the baseline calls the proposers of a layer one after another, as the reference MoA
   implementation does (13 x d).
2. Throughput: 100 queries, 32 in flight, endpoint limit L concurrent calls. The ideal is the
   endpoint's capacity: ceil(1300 / L) x d. The baseline runs the same 32 queries in flight with
   sequential proposers inside each query.

The server runs in its own process so its threads do not share the GIL with the engine.

    python benchmarks/engine_overhead.py [--latency 0.2] [--queries 100] [--limit 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import subprocess
import sys
import time

import moa_lab as moa
from moa_lab.models import EndpointConfig

SERVER = """
import sys, time
from moa_lab.testing import OpenAITestServer
server = OpenAITestServer(latency=float(sys.argv[1]))
print(server.start(), flush=True)
sys.stdin.read()
server.stop()
"""


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def topology() -> moa.TopologySpec:
    return moa.preset("moa", proposers=[f"bench/model-{i}" for i in range(6)], layers=3, aggregator="bench/aggregator", max_tokens=64)


def model_set(base_url: str, limit: int) -> moa.ModelSet:
    endpoint = EndpointConfig(kind="openai", base_url=base_url, concurrency=limit, timeout_s=30)
    return moa.ModelSet({"bench": endpoint}, cache=None)


async def sequential_baseline_query(client, query: str) -> None:  # type: ignore[no-untyped-def]
    """The reference implementation's shape: proposers of a layer called one after another."""
    references: list[str] = []
    for _layer in range(2):
        answers = []
        for i in range(6):
            system = "Responses from models:\n" + "\n".join(f"{k}. {r}" for k, r in enumerate(references, 1))
            messages = ([{"role": "system", "content": system}] if references else []) + [{"role": "user", "content": query}]
            reply = await client.chat.completions.create(model=f"model-{i}", messages=messages, max_tokens=64)
            answers.append(reply.choices[0].message.content)
        references = answers
    system = "Responses from models:\n" + "\n".join(f"{k}. {r}" for k, r in enumerate(references, 1))
    await client.chat.completions.create(model="aggregator", messages=[{"role": "system", "content": system}, {"role": "user", "content": query}], max_tokens=64)


async def per_query(base_url: str, n: int) -> tuple[list[float], list[float]]:
    import openai

    spec = topology()
    ours, base = [], []
    async with model_set(base_url, 64) as models:
        pipeline = moa.Pipeline(spec, models)
        for i in range(n):
            result = await pipeline.run_query(moa.Sample(f"per-query {i}"))
            assert result.error is None, result.error
            ours.append(result.latency_s)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    for i in range(n):
        start = time.perf_counter()
        await sequential_baseline_query(client, f"baseline {i}")
        base.append(time.perf_counter() - start)
    await client.close()
    return ours, base


async def throughput(base_url: str, queries: int, in_flight: int, limit: int) -> tuple[float, float]:
    import openai

    spec = topology()
    samples = [moa.Sample(f"throughput {i}") for i in range(queries)]
    async with model_set(base_url, limit) as models:
        start = time.perf_counter()
        results = await moa.Pipeline(spec, models).run(samples, concurrency=in_flight)
        ours = time.perf_counter() - start
    assert all(r.error is None for r in results)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            await sequential_baseline_query(client, f"baseline throughput {i}")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(queries)))
    base = time.perf_counter() - start
    await client.close()
    return ours, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency d per call, seconds")
    parser.add_argument("--per-query", type=int, default=20, help="queries for the per-query measurement")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--limit", type=int, default=32, help="endpoint concurrency limit L")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = parser.parse_args()
    proc, base_url = start_server(args.latency)
    try:
        d = args.latency
        ours, base = asyncio.run(per_query(base_url, args.per_query))
        t_ours, t_base = asyncio.run(throughput(base_url, args.queries, args.in_flight, args.limit))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    critical = 3 * d
    ideal = math.ceil(args.queries * 13 / args.limit) * d
    med_ours, med_base = statistics.median(ours), statistics.median(base)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, d = {d:.3f} s")
    print(f"{'per query (3-layer MoA, 6 proposers/layer)':<48}{'median s':>10}{'ratio to 3d':>16}")
    print(f"{'  moa-lab (concurrent proposers)':<48}{med_ours:>10.3f}{med_ours / critical:>16.3f}")
    print(f"{'  baseline (sequential proposers)':<48}{med_base:>10.3f}{med_base / critical:>16.3f}")
    print(f"{'  critical path 3d':<48}{critical:>10.3f}{1.0:>16.3f}")
    print(f"{f'{args.queries} queries, {args.in_flight} in flight, endpoint limit {args.limit}':<48}{'wall s':>10}{'ratio to ideal':>16}")
    print(f"{'  moa-lab':<48}{t_ours:>10.3f}{t_ours / ideal:>16.3f}")
    print(f"{'  baseline (sequential proposers)':<48}{t_base:>10.3f}{t_base / ideal:>16.3f}")
    print(f"{'  ideal ceil(13 x queries / L) x d':<48}{ideal:>10.3f}{1.0:>16.3f}")
    if args.json:
        print(json.dumps({"d": d, "per_query_median": med_ours, "baseline_median": med_base, "critical": critical,
                          "throughput_wall": t_ours, "baseline_wall": t_base, "ideal": ideal}))


if __name__ == "__main__":
    main()
