"""The load process of the RLS benchmark: N concurrent ``ShouldRateLimit`` calls for a fixed time.

It runs in its own process (``bench.rls_bench`` starts it) so that its CPU is not the servers'.
Each request carries one descriptor drawn from a fixed set of distinct keys; with several targets
the hash space is cut into equal slices, one per target (a ``core.slices.Assignment``), and a key
always goes to the owner of its 64-bit hash, so each server's buckets see all their keys' traffic.

It prints one JSON object: calls, errors, over-limit answers, wall time, and the CPU seconds the
server processes (``--server-pid``) and the load process itself used in the measured window;
raw latencies (nanoseconds, int64) go to ``--latency-file``.

    python -m bench.rls_load --target 127.0.0.1:50051 --server-pid 1234 --duration 5
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.core.keys import Entries, canonical_bytes, key_hash
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation
from ratekeeper.transport.channels import open_aio_channel

__all__ = [
    "DOMAIN",
    "WORKLOAD_CONFIG",
    "even_assignment",
    "main",
    "owner",
    "traffic",
    "workload_keys",
    "workload_requests",
]

DOMAIN = "bench"
#: How many times more often a hot key is requested than the others.
HOT_WEIGHT = 10

#: The ratekeeper policy the benchmark loads: a few rules of the common shapes (nested per-user
#: limits, a per-address limit, a shadow rule, an unlimited route). The per-user limit is low
#: enough that some keys go over it at benchmark rates, so both answers are exercised.
WORKLOAD_CONFIG = f"""\
domain: {DOMAIN}
descriptors:
  - key: route
    value: api
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: 5}}
  - key: route
    value: search
    descriptors:
      - key: user
        shadow_mode: true
        rate_limit: {{unit: second, requests_per_unit: 2}}
  - key: remote_address
    rate_limit: {{unit: minute, requests_per_unit: 600}}
  - key: route
    value: health
    rate_limit: {{unlimited: true}}
"""


def workload_keys(count: int) -> list[Entries]:
    """``count`` distinct descriptors: 70 % per-user api, 20 % shadow search, 10 % by address."""
    keys: list[Entries] = []
    for i in range(count):
        kind = i % 10
        if kind < 7:
            keys.append((("route", "api"), ("user", f"user-{i}")))
        elif kind < 9:
            keys.append((("route", "search"), ("user", f"user-{i}")))
        else:
            keys.append((("remote_address", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),))
    return keys


def traffic(count: int) -> list[Entries]:
    """One pass of the request mix over ``count`` distinct keys, in key order.

    Hot keys: the first 5 % of keys come up ten times as often as the rest, so they go over
    their limits while the others stay under (most real traffic has such a head).
    """
    keys = workload_keys(count)
    return keys + keys[: max(1, count // 20)] * (HOT_WEIGHT - 1)


def workload_requests(count: int) -> list[rls_pb2.RateLimitRequest]:
    """:func:`traffic` as ``ShouldRateLimit`` requests."""
    return [_request(entries) for entries in traffic(count)]


def even_assignment(targets: list[str]) -> Assignment:
    """The hash space cut into equal contiguous slices, one per target, as an assigner would."""
    starts = tuple(i * HASH_SPACE // len(targets) for i in range(len(targets)))
    return Assignment(Generation(), starts, tuple(targets))


def owner(assignment: Assignment, entries: Entries) -> str:
    """The target that owns the key: the architecture's rule, by the key's 64-bit hash."""
    return assignment.owner_of(key_hash(canonical_bytes(DOMAIN, entries)))


def _request(entries: Entries) -> rls_pb2.RateLimitRequest:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[entry(key=k, value=v) for k, v in entries]
    )
    return rls_pb2.RateLimitRequest(domain=DOMAIN, descriptors=[descriptor])


@dataclass
class _Tally:
    """What the workers saw; only completions inside the measured window are recorded."""

    measuring: bool = False
    stopping: bool = False
    latencies: array.array[int] = field(default_factory=lambda: array.array("q"))
    over_limit: int = 0
    errors: int = 0


async def _worker(
    work: list[tuple[rls_pb2_grpc.RateLimitServiceStub, rls_pb2.RateLimitRequest]],
    start: int,
    stride: int,
    period: float,
    tally: _Tally,
) -> None:
    """Send calls back to back, or one per ``period`` seconds when it is positive."""
    over = rls_pb2.RateLimitResponse.OVER_LIMIT
    loop = asyncio.get_running_loop()
    # Stagger the paced workers across one period so their calls do not arrive in bursts.
    due = loop.time() + period * start / stride
    i = start
    while not tally.stopping:
        if period > 0:
            due += period
            # A worker that fell behind does not catch up in a burst: the offered rate is a
            # ceiling, and CPU per call is what paced runs compare.
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time())
        stub, request = work[i % len(work)]
        i += stride
        began = time.perf_counter_ns()
        try:
            response = await stub.ShouldRateLimit(request)
        except grpc.aio.AioRpcError:
            if tally.measuring:
                tally.errors += 1
            continue
        if tally.measuring:
            tally.latencies.append(time.perf_counter_ns() - began)
            tally.over_limit += response.overall_code == over


def _cpu_seconds(procs: list[psutil.Process]) -> list[float]:
    return [sum(p.cpu_times()[:2]) for p in procs]


async def run(args: argparse.Namespace) -> dict[str, object]:
    channels = {target: open_aio_channel(target) for target in args.target}
    stubs = {t: rls_pb2_grpc.RateLimitServiceStub(channel) for t, channel in channels.items()}
    assignment = even_assignment(args.target)
    work = [(stubs[owner(assignment, k)], _request(k)) for k in traffic(args.keys)]
    # A fixed shuffle spreads each worker's keys over every rule and server.
    random.Random(42).shuffle(work)
    for channel in channels.values():
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
    servers = [psutil.Process(pid) for pid in args.server_pid]
    me = psutil.Process()
    tally = _Tally()
    period = args.concurrency / args.rate if args.rate > 0 else 0.0
    workers = [
        asyncio.create_task(_worker(work, n, args.concurrency, period, tally))
        for n in range(args.concurrency)
    ]
    try:
        await asyncio.sleep(args.warmup)
        cpu_before, me_before = _cpu_seconds(servers), _cpu_seconds([me])[0]
        began = time.perf_counter()
        tally.measuring = True
        await asyncio.sleep(args.duration)
        tally.measuring = False
        wall = time.perf_counter() - began
        cpu_after, me_after = _cpu_seconds(servers), _cpu_seconds([me])[0]
    finally:
        tally.stopping = True
        await asyncio.gather(*workers)
        for channel in channels.values():
            await channel.close(grace=None)
    Path(args.latency_file).write_bytes(tally.latencies.tobytes())
    return {
        "calls": len(tally.latencies),
        "errors": tally.errors,
        "over_limit": tally.over_limit,
        "wall_s": wall,
        "server_cpu_s": [a - b for a, b in zip(cpu_after, cpu_before, strict=True)],
        "load_cpu_s": me_after - me_before,
        "work_per_server": [sum(1 for s, _ in work if s is stub) for stub in stubs.values()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", required=True, help="host:port, repeatable")
    parser.add_argument("--server-pid", action="append", type=int, default=[])
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight in total")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered calls/s in total; 0: closed loop"
    )
    parser.add_argument("--keys", type=int, default=1000, help="distinct descriptors")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--latency-file", required=True)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
