"""Latency of a forwarded ``ShouldRateLimit`` against a local one, on loopback, in one run.

Two pairs of cluster members run as real processes (``--member``), each pair holding a fixed
assignment: the hash space split evenly between its two addresses. The load (this process)
sends every call to a pair's member A: "local" calls carry keys A owns; "forwarded" calls carry
keys B owns, so A sends each to B (one hop) and merges B's answer. One pair's A coalesces the
calls of a tick into one batched call per owner (the default), the other's sends one call per
request, so both are measured in the same run. Each concurrency (calls in flight) runs every
mode back to back, ``--rounds`` times, and the table gives the median of the rounds' p50 and
p99. The issue's target: forwarded p99 at most twice the local p99.

    python -m bench.forward_bench                 # ~50 s
    python -m bench.forward_bench --concurrency 8 --duration 2 --rounds 1
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from bench.rls_load import WORKLOAD_CONFIG, owner, traffic, workload_requests
from ratekeeper.core.slices import even_split
from ratekeeper.server.app import Replica, settle_gc
from ratekeeper.server.forwarding import DEFAULT_MAX_IN_FLIGHT, AssignmentOwners
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.testing.fixed_members import build_member
from ratekeeper.testing.procs import ManagedProcess, free_port, port_open, start
from ratekeeper.testing.server_process import metric_samples
from ratekeeper.transport.channels import open_aio_channel

__all__ = ["Pair", "Row", "calls_received", "main", "measure", "render"]

#: Mode → (pair, whose keys: 0 the entry's own, 1 the other member's).
MODES = {
    "local": ("coalescing", 0),
    "forwarded, coalesced": ("coalescing", 1),
    "forwarded, one call each": ("one call each", 1),
}
#: Pair → whether its entry member coalesces.
PAIRS = {"coalescing": True, "one call each": False}


@dataclass(frozen=True, slots=True)
class Row:
    """One concurrency and mode: the median over rounds of each round's percentiles."""

    concurrency: int
    mode: str
    #: Calls measured, over every round.
    calls: int
    p50_ms: float
    p99_ms: float
    #: Calls sent, warm-ups included, over every round.
    sent: int
    #: CPU both members spent per call sent (µs), warm-ups included: steadier than latency on
    #: a shared machine.
    cpu_us: float


async def _serve_member(
    index: int, addresses: list[str], http_port: int, config: str, coalesce: bool, in_flight: int
) -> None:
    port = int(addresses[index].rpartition(":")[2])
    settings = with_options(ServerSettings(), grpc_port=port, http_port=http_port, config=config)
    owners = AssignmentOwners(addresses[index], even_split(addresses))
    server = Replica(build_member(settings, owners, coalesce=coalesce, max_in_flight=in_flight))
    await server.start()
    settle_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


@dataclass(frozen=True, slots=True)
class Pair:
    """Two started members; the first is the entry."""

    addresses: list[str]
    http_ports: list[int]
    procs: list[ManagedProcess]


def _pair(work_dir: Path, name: str, coalesce: bool, in_flight: int) -> Pair:
    config = work_dir / name / "config"
    config.mkdir(parents=True)
    (config / "bench.yaml").write_text(WORKLOAD_CONFIG)
    ports = [free_port(), free_port()]
    http_ports = [free_port(), free_port()]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    pair = Pair(addresses, http_ports, [])
    for i, port in enumerate(ports):
        argv = [sys.executable, "-m", "bench.forward_bench", "--member", str(i)]
        argv += ["--addresses", ",".join(addresses), "--http-port", str(http_ports[i])]
        argv += ["--config", str(config), "--max-in-flight", str(in_flight)]
        argv += [] if coalesce else ["--one-call-each"]
        log_dir = work_dir / name
        pair.procs.append(start(argv, name=f"member{i}", log_dir=log_dir, ready=port_open(port)))
    return pair


def calls_received(http_port: int) -> dict[str, float]:
    """How many calls of each kind a member answered (its ``ratekeeper_call_seconds``)."""
    return {
        sample.labels["call"]: sample.value
        for sample in metric_samples(http_port)
        if sample.name == "ratekeeper_call_seconds_count"
    }


async def _worker(
    stub: rls_pb2_grpc.RateLimitServiceStub,
    requests: list[rls_pb2.RateLimitRequest],
    first: int,
    stride: int,
    window: list[int],
    latencies: array.array[int],
) -> None:
    """Calls back to back; ``window`` is [measuring, stopping, calls sent]."""
    i = first
    while not window[1]:
        began = time.perf_counter_ns()
        await stub.ShouldRateLimit(requests[i % len(requests)])
        i += stride
        window[2] += 1
        if window[0]:
            latencies.append(time.perf_counter_ns() - began)


async def _load(
    stub: rls_pb2_grpc.RateLimitServiceStub,
    requests: list[rls_pb2.RateLimitRequest],
    concurrency: int,
    warmup: float,
    duration: float,
) -> tuple[list[int], int]:
    """The sorted latencies of the calls measured, and how many calls were sent."""
    window = [0, 0, 0]
    latencies: array.array[int] = array.array("q")
    workers = [
        asyncio.create_task(_worker(stub, requests, n, concurrency, window, latencies))
        for n in range(concurrency)
    ]
    await asyncio.sleep(warmup)
    window[0] = 1
    await asyncio.sleep(duration)
    window[:2] = [0, 1]
    await asyncio.gather(*workers)
    return sorted(latencies), window[2]


def _percentile_ms(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def _cpu_s(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


async def measure(
    pairs: dict[str, list[str]],
    pids: dict[str, list[int]],
    concurrencies: list[int],
    rounds: int,
    warmup: float,
    duration: float,
) -> list[Row]:
    """Every concurrency and mode, ``rounds`` times; ``pairs`` are the members' addresses and
    ``pids`` their processes, by pair name (the first of each is the entry)."""
    procs = {name: [psutil.Process(pid) for pid in ids] for name, ids in pids.items()}
    keys = traffic(1000)
    requests = workload_requests(1000)
    channels = {name: open_aio_channel(addresses[0]) for name, addresses in pairs.items()}
    work = {}
    for mode, (name, whose) in MODES.items():
        assignment, target = even_split(pairs[name]), pairs[name][whose]
        stub = rls_pb2_grpc.RateLimitServiceStub(channels[name])
        mine = [r for k, r in zip(keys, requests, strict=True) if owner(assignment, k) == target]
        work[mode] = (stub, mine, procs[name])
    for channel in channels.values():
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
    rows = []
    try:
        for concurrency in concurrencies:
            seen: dict[str, list[tuple[int, float, float, int, float]]]
            seen = {mode: [] for mode in MODES}
            for _ in range(rounds):
                for mode, (stub, mine, members) in work.items():
                    cpu = _cpu_s(members)
                    ns, sent = await _load(stub, mine, concurrency, warmup, duration)
                    cpu = _cpu_s(members) - cpu
                    p50, p99 = _percentile_ms(ns, 0.5), _percentile_ms(ns, 0.99)
                    seen[mode].append((len(ns), p50, p99, sent, cpu))
            for mode in MODES:
                calls, p50s, p99s, sents, cpus = zip(*seen[mode], strict=True)
                p50, p99 = statistics.median(p50s), statistics.median(p99s)
                cpu_us = 1e6 * sum(cpus) / sum(sents)
                rows.append(Row(concurrency, mode, sum(calls), p50, p99, sum(sents), cpu_us))
    finally:
        for channel in channels.values():
            await channel.close(None)
    return rows


def render(rows: list[Row]) -> str:
    """The markdown table, with each forwarded p99 against its local one."""
    lines = [
        "| in flight | call | calls | p50 ms | p99 ms | p99 vs local | target ≤ 2× "
        "| members' CPU µs/call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    local = {row.concurrency: row.p99_ms for row in rows if row.mode == "local"}
    for row in rows:
        ratio = row.p99_ms / local[row.concurrency]
        verdict = "" if row.mode == "local" else ("met" if ratio <= 2.0 else "MISSED")
        lines.append(
            f"| {row.concurrency} | {row.mode} | {row.calls:,} | {row.p50_ms:.2f} "
            f"| {row.p99_ms:.2f} | {ratio:.2f}× | {verdict} | {row.cpu_us:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, action="append", help="default: 8 and 64")
    parser.add_argument("--rounds", type=int, default=2, help="every mode once per round")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per run")
    parser.add_argument("--duration", type=float, default=3.5, help="measured seconds per run")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="calls in flight to one owner before requests coalesce",
    )
    parser.add_argument("--member", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--http-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--one-call-each", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member is not None:
        addresses = args.addresses.split(",")
        coalesce, in_flight = not args.one_call_each, args.max_in_flight
        member = _serve_member(
            args.member, addresses, args.http_port, args.config, coalesce, in_flight
        )
        asyncio.run(member)
        return
    with tempfile.TemporaryDirectory(prefix="forward-bench-") as tmp:
        pairs: dict[str, Pair] = {}
        try:
            for name, coalesce in PAIRS.items():
                slug = name.replace(" ", "-")
                pairs[name] = _pair(Path(tmp), slug, coalesce, args.max_in_flight)
            addresses = {name: pair.addresses for name, pair in pairs.items()}
            pids = {name: [proc.pid for proc in pair.procs] for name, pair in pairs.items()}
            concurrencies = args.concurrency or [8, 64]
            rows = asyncio.run(
                measure(addresses, pids, concurrencies, args.rounds, args.warmup, args.duration)
            )
            owner = calls_received(pairs["coalescing"].http_ports[1])
        finally:
            for pair in pairs.values():
                for proc in pair.procs:
                    with contextlib.suppress(Exception):
                        proc.stop()
    print(render(rows))
    forwarded = sum(row.sent for row in rows if row.mode == "forwarded, coalesced")
    batches = owner.get("ShouldRateLimitBatch", 0.0)
    singles = owner.get("ShouldRateLimit", 0.0)
    print(
        f"\ncoalescing: {forwarded:,} forwarded requests reached their owner in "
        f"{batches + singles:,.0f} calls ({batches:,.0f} of them batched), "
        f"{forwarded / max(1.0, batches + singles):.2f} requests per call"
    )


if __name__ == "__main__":
    main()
