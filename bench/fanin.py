"""Fan-in: many batch-reporting clients against one server or a cluster (issue 15, item 5).

One real ``ratekeeper serve`` process, or with ``--cluster N`` N real member processes (member 0
embeds the assigner, the others join it; the run starts once the assignment covers them all).
``--procs`` load processes each drive their share of ``--clients`` real client machines
(``LimiterMachine``, the state machine inside every ``ratekeeper.Limiter``), multiplexed on one
asyncio loop per process, with one gRPC channel per server. Every ``1/--rate`` s each client
decides one hit on each of its ``--keys`` keys (drawn from a shared key space, so keys have
several reporting clients, as in a fleet of replicas), builds its report and sends it with the
deadline the machine gives it, to the server the machine routes it to. Clients are given one
address (member 0's in a cluster): a member's answer carries the assignment, and the machines
then report to each key's owner, as a ``ratekeeper.Limiter`` given one member's address does.
Meanwhile this
process times ``ShouldRateLimit`` calls (the same server's RLS, under the same load; also before
the load, for the ratio) and ``GET /healthcheck`` (an HTTP handler on the server's event loop
that does nothing: its latency is the loop's lag).

Printed (one JSON object, and a Markdown row): offered and answered key-updates per second,
server CPU µs per answered key-update (psutil, the measured window), report latency p50/p99
(client-side, answered reports), failed reports, event-loop lag p50/p99, RLS p99 at rest and
under load, and bytes per key-update both ways (protobuf message bytes, gRPC/HTTP2 framing not
counted). With ``--cluster``, also each member's CPU and share of the answered key-updates,
and how evenly they spread (the busiest member's share over the mean); the probes and the
event-loop lag are member 0's.

    python -m bench.fanin --cluster 4 --clients 100   # 4 members, clients given member 0
    python -m bench.fanin                          # 1,000 clients x 10/s x 100 keys, compact
    python -m bench.fanin --clients 100 --wire full --duration 10
    python -m bench.fanin --replay                 # simulated clients: the server's capacity
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio
import psutil
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.client.driving import Peers
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.options import LimiterOptions
from ratekeeper.client.report_routes import ReportRoutes
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.testing.cluster import Cluster
from ratekeeper.testing.procs import http_get
from ratekeeper.testing.server_process import ratekeeper_server

__all__ = ["FANIN_CONFIG", "main", "percentile"]

DOMAIN = "fanin"
FANIN_CONFIG = f"""\
domain: {DOMAIN}
descriptors:
  - key: key
    rate_limit: {{unit: second, requests_per_unit: 1000}}
"""
#: Distinct keys in the fleet's key space (each client reports ``--keys`` of them).
KEY_SPACE = 10_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the load processes --------------------------------------------------------------------------


class _Channel(NamedTuple):
    """A load process's one channel to a server, and the report call on it."""

    channel: grpc.aio.Channel
    call: Any


def _open(address: str) -> _Channel:
    channel = grpc.aio.insecure_channel(address)
    return _Channel(channel, aio_report_call(channel))


def _open_listener(target: str) -> tuple[grpc.aio.Channel, Any]:
    """A channel to a server's report listener (``--report-port``), as a Limiter opens one."""
    channel = grpc.aio.insecure_channel(target)
    return channel, aio_report_call(channel)


#: Channels a load process stopped using: closed at its end, not at once, as the process's
#: clients share them and other reports may be in flight on one (a closed channel cancels them).
_RETIRED: list[grpc.aio.Channel] = []


async def _close(channels: list[grpc.aio.Channel]) -> None:
    _RETIRED.extend(channels)


Routes = ReportRoutes[grpc.aio.Channel, Any]


async def _client(
    index: int,
    args: argparse.Namespace,
    peers: Peers[_Channel],
    routes: Routes,
    tally: dict[str, Any],
    stop: float,
) -> None:
    rng = random.Random(index)
    keys = [f"k{k}" for k in rng.sample(range(KEY_SPACE), args.keys)]
    options = LimiterOptions(
        domain=DOMAIN,
        report_interval=1 / args.rate,
        client_id=f"fanin-{index}",
        compact_reports=args.wire == "compact",
    )
    machine = LimiterMachine(args.target, options)
    period = 1 / args.rate
    await asyncio.sleep(rng.random() * period)  # clients' cycles are not in phase
    measuring_from = tally["measure_from"]
    while time.monotonic() < stop:
        started = time.monotonic()
        now = time.monotonic_ns()
        for key in keys:
            machine.decide(key, 1, now)
        for out in machine.collect(now):
            body = out.request.ByteSize()
            sent = time.perf_counter()
            listener = routes.call(out.address)
            call = peers.get(out.address).call if listener is None else listener
            try:
                answer = await call(out.request, timeout=out.timeout)
            except grpc.aio.AioRpcError as exc:
                if listener is not None:
                    await _close(routes.failed(out.address, exc.code(), time.monotonic_ns()))
                machine.failed(out.address, str(exc.code()), time.monotonic_ns())
                tally.setdefault("errors", {}).setdefault(str(exc.code()), 0)
                tally["errors"][str(exc.code())] += 1
                if started >= measuring_from:
                    tally["failed"] += 1
                continue
            now = time.monotonic_ns()
            machine.answered(out.address, answer, now)
            via = listener is not None
            await _close(routes.heard(out.address, answer.report_port, now, via))
            if started >= measuring_from:
                tally["latency"].append(time.perf_counter() - sent)
                tally["answered"] += 1
                tally["via_listener"] += via
                updates = len(out.request.keys) + len(out.request.known_ids)
                tally["key_updates"] += updates
                by_server = tally["by_server"]
                by_server[out.address] = by_server.get(out.address, 0) + updates
                tally["up"] += body
                tally["down"] += answer.ByteSize()
        if started >= measuring_from:
            tally["offered"] += len(keys)
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def _replayed(
    index: int,
    args: argparse.Namespace,
    peers: Peers[_Channel],
    routes: Routes,
    tally: dict[str, Any],
    stop: float,
) -> None:
    """A simulated client: the compact reports a client machine would send (one hit per key
    per cycle), without the machine, so the load costs little besides gRPC. It does not route:
    everything goes to the given address (so no ``--cluster``)."""
    call = peers.get(args.target).call
    rng = random.Random(index)
    keys = rng.sample(range(KEY_SPACE), args.keys)
    period = 1 / args.rate
    interval = round(period * 1e9)
    first = pb.ReportRequest(client_id=f"fanin-{index}", interval_ns=interval, sequence=1)
    for n, k in enumerate(keys, 1):
        key = first.keys.add(domain=DOMAIN, admitted=1, key_id=n)
        key.entries.add(key="key", value=f"k{k}")
    compact = pb.ReportRequest(client_id=f"fanin-{index}", interval_ns=interval)
    compact.known_ids.extend(range(1, args.keys + 1))
    compact.known_admitted.extend([1] * args.keys)
    compact.known_rejected.extend([0] * args.keys)
    await asyncio.sleep(rng.random() * period)
    request, sequence, synced = first, 1, False
    while time.monotonic() < stop:
        started = time.monotonic()
        request.sequence = sequence
        body = request.ByteSize()
        sent = time.perf_counter()
        try:
            deadline = 0.05 + 0.0005 * args.keys if synced else 5.0  # interning: let it land
            answer = await call(request, timeout=deadline)
        except grpc.aio.AioRpcError:
            synced = False
            if started >= tally["measure_from"]:
                tally["failed"] += 1
        else:
            sequence, request, synced = sequence + 1, compact, True
            listener = routes.call(args.target)
            via = listener is not None and call is listener
            await _close(routes.heard(args.target, answer.report_port, 0, via))
            call = routes.call(args.target) or call
            if started >= tally["measure_from"]:
                tally["via_listener"] += via
                tally["latency"].append(time.perf_counter() - sent)
                tally["answered"] += 1
                tally["key_updates"] += args.keys
                tally["up"] += body
                tally["down"] += answer.ByteSize()
        compact.omit_unchanged = synced
        if started >= tally["measure_from"]:
            tally["offered"] += args.keys
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    tally: dict[str, Any] = {
        "latency": [],
        "answered": 0,
        "via_listener": 0,
        "failed": 0,
        "key_updates": 0,
        "offered": 0,
        "up": 0,
        "down": 0,
        "by_server": {},
        "measure_from": time.monotonic() + args.warmup,
    }
    stop = time.monotonic() + args.warmup + args.duration
    peers = Peers(_open)
    routes: Routes = ReportRoutes(_open_listener)
    clients = range(args.first, args.first + args.count)
    simulate = _replayed if args.replay else _client
    await asyncio.gather(*(simulate(i, args, peers, routes, tally, stop) for i in clients))
    for entry in peers.clear():
        await entry.channel.close(None)
    for channel in [*_RETIRED, *routes.forget(set())]:
        await channel.close(None)
    del tally["measure_from"]
    return tally


# --- the probes and the driver -------------------------------------------------------------------


class _Probe(threading.Thread):
    """Times one RLS call and one ``GET /healthcheck`` every ``every`` s until stopped."""

    def __init__(self, target: str, http_port: int, every: float = 0.02) -> None:
        super().__init__(name="fanin-probe", daemon=True)
        self._target, self._http_port, self._every = target, http_port, every
        self.stop = threading.Event()
        self.rls: list[float] = []
        self.lag: list[float] = []

    def run(self) -> None:
        entry = ratelimit_pb2.RateLimitDescriptor.Entry
        with grpc.insecure_channel(self._target) as channel:
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            i = 0
            while not self.stop.is_set():
                i += 1
                descriptor = ratelimit_pb2.RateLimitDescriptor(
                    entries=[entry(key="key", value=f"probe{i % 100}")]
                )
                request = rls_pb2.RateLimitRequest(domain=DOMAIN, descriptors=[descriptor])
                start = time.perf_counter()
                stub.ShouldRateLimit(request, timeout=30)
                self.rls.append(time.perf_counter() - start)
                start = time.perf_counter()
                http_get(self._http_port, "/healthcheck")
                self.lag.append(time.perf_counter() - start)
                self.stop.wait(self._every)


def _probe(target: str, http_port: int, seconds: float) -> _Probe:
    probe = _Probe(target, http_port)
    probe.start()
    time.sleep(seconds)
    probe.stop.set()
    probe.join(30)
    return probe


class _Servers(NamedTuple):
    """What the run measures: every server process by address; the probed one is the first."""

    addresses: list[str]
    pids: list[int]
    http_port: int


@contextlib.contextmanager
def _serving(args: argparse.Namespace, tmp: Path) -> Iterator[_Servers]:
    """One ``ratekeeper serve``, or ``--cluster`` members once the assignment covers them all."""
    config = tmp / "config"
    config.mkdir()
    (config / "fanin.yaml").write_text(FANIN_CONFIG)
    flags = ("--report-port", "0") if args.listener == "report" else ()
    if not args.cluster:
        with ratekeeper_server(config, tmp / "logs", flags=flags) as server:
            yield _Servers([server.grpc_target], [server.process.pid], server.http_port)
        return
    # heartbeats as in production, not the testing helper's fast ones: on a loaded machine a
    # member must not lose its slices to a starved heartbeat mid-run (nor to a load round)
    cluster = Cluster(
        args.cluster,
        log_dir=tmp / "logs",
        config=config,
        embedded=True,
        heartbeat_interval=1.0,
        unhealthy_after=5.0,
        load_interval=3600.0,
        server_flags=flags,
    )
    with cluster as c:
        pids = [server.process.pid for server in c.servers]
        yield _Servers(c.addresses, pids, c.servers[0].http_port)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server(s) and the load processes; measure; the summary."""
    with tempfile.TemporaryDirectory() as tmp, _serving(args, Path(tmp)) as servers:
        target = servers.addresses[0]
        rest = _probe(target, servers.http_port, 3.0)
        per_proc = [args.clients // args.procs] * args.procs
        per_proc[-1] += args.clients - sum(per_proc)
        children, first = [], 0
        for count in per_proc:
            argv = [sys.executable, "-m", "bench.fanin", "--child", "--target", target]
            argv += ["--first", str(first), "--count", str(count), "--wire", args.wire]
            argv += ["--keys", str(args.keys), "--rate", str(args.rate)]
            argv += ["--duration", str(args.duration), "--warmup", str(args.warmup)]
            argv += ["--replay"] if args.replay else []
            children.append(subprocess.Popen(argv, stdout=subprocess.PIPE))
            first += count
        cpus = [psutil.Process(pid) for pid in servers.pids]
        time.sleep(args.warmup)
        cpu_before, wall_before = [sum(c.cpu_times()[:2]) for c in cpus], time.monotonic()
        loaded = _probe(target, servers.http_port, args.duration * 0.9)
        cpu_seconds = [sum(c.cpu_times()[:2]) - b for c, b in zip(cpus, cpu_before, strict=True)]
        wall = time.monotonic() - wall_before
        results = [json.loads(c.communicate(timeout=600)[0]) for c in children]
    summary = _summary(args, results, sum(cpu_seconds), wall, rest, loaded)
    if args.cluster:
        cpu = dict(zip(servers.addresses, cpu_seconds, strict=True))
        summary.update(_spread(args, results, cpu, wall))
    return summary


def _summary(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    cpu_seconds: float,
    wall: float,
    rest: _Probe,
    loaded: _Probe,
) -> dict[str, Any]:
    total = {k: sum(r[k] for r in results) for k in ("answered", "failed", "key_updates")}
    for k in ("offered", "up", "down"):
        total[k] = sum(r[k] for r in results)
    latency = [x for r in results for x in r["latency"]]
    updates = max(total["key_updates"], 1)
    # the server's CPU over the probe window, scaled to the load processes' measured window
    per_second = total["key_updates"] / args.duration
    return {
        "clients": args.clients,
        "keys": args.keys,
        "rate": args.rate,
        "wire": "replayed compact" if args.replay else args.wire,
        "listener": args.listener,
        "offered_key_updates_per_s": round(total["offered"] / args.duration),
        "answered_key_updates_per_s": round(per_second),
        "server_cpu_us_per_key_update": _us_per_update(cpu_seconds, wall, per_second),
        "server_cpu_cores": round(cpu_seconds / wall, 2),
        "reports_answered": total["answered"],
        "reports_failed": total["failed"],
        "reports_via_listener": sum(r.get("via_listener", 0) for r in results),
        "report_p50_ms": round(percentile(latency, 0.5) * 1e3, 2),
        "report_p99_ms": round(percentile(latency, 0.99) * 1e3, 2),
        "loop_lag_p50_ms": round(percentile(loaded.lag, 0.5) * 1e3, 2),
        "loop_lag_p99_ms": round(percentile(loaded.lag, 0.99) * 1e3, 2),
        "rls_p99_rest_ms": round(percentile(rest.rls, 0.99) * 1e3, 2),
        "rls_p99_loaded_ms": round(percentile(loaded.rls, 0.99) * 1e3, 2),
        "bytes_up_per_key_update": round(total["up"] / updates, 2),
        "bytes_down_per_key_update": round(total["down"] / updates, 2),
        "errors": _merged([r.get("errors", {}) for r in results]),
    }


def _us_per_update(cpu_seconds: float, wall: float, per_second: float) -> float:
    return round(cpu_seconds / wall / max(per_second, 1) * 1e6, 2)


def _spread(
    args: argparse.Namespace, results: list[dict[str, Any]], cpu: dict[str, float], wall: float
) -> dict[str, Any]:
    """Each member's CPU per key-update it answered, and how evenly key-updates spread: shares
    in member order (member 0 first, the address the clients were given), and the busiest
    member's share over the mean (1.0: even)."""
    answered = _merged([r["by_server"] for r in results])
    counts = [answered.get(address, 0) for address in cpu]
    total = max(sum(counts), 1)
    return {
        "members": args.cluster,
        "member_cpu_cores": [round(s / wall, 2) for s in cpu.values()],
        "member_cpu_us_per_key_update": [
            _us_per_update(s, wall, n / args.duration)
            for s, n in zip(cpu.values(), counts, strict=True)
        ],
        "member_share_pct": [round(100 * n / total, 1) for n in counts],
        "spread_max_over_mean": round(max(counts) * len(counts) / total, 2),
        "unknown_servers": sorted(set(answered) - set(cpu)),
    }


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for one in counts:
        for code, n in one.items():
            out[code] = out.get(code, 0) + n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanin")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=100, help="keys per client")
    parser.add_argument("--rate", type=float, default=10.0, help="reports per second per client")
    parser.add_argument("--procs", type=int, default=4, help="load processes")
    parser.add_argument("--wire", choices=("full", "compact"), default="compact")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="simulated clients replaying compact reports instead of client machines",
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--cluster", type=int, default=0, metavar="N", help="N member processes, not one server"
    )
    parser.add_argument(
        "--listener",
        choices=("report", "grpc"),
        default="report",
        help="report: servers run --report-port 0 and clients follow it (the default); "
        "grpc: reports go to the gRPC port (grpc.aio), as before it",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cluster and args.replay:
        parser.error("--replay does not route by owner: it runs against one server only")
    if args.child:
        print(json.dumps(asyncio.run(_load(args))))
        return 0
    summary = run(args)
    print(json.dumps(summary, indent=2))
    print("| " + " | ".join(str(v) for v in summary.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
