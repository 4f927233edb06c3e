"""The sidecar's Python work per ``ShouldRateLimit`` call, the bytes Envoy sends replayed.

A :class:`~ratekeeper.sidecar.app.Sidecar` is built in-process (its reporter pointed at a
server that is not there: reports fail, decisions stay local) and one unix-socket connection's
protocol is fed, call after call, exactly what Envoy 1.40 writes for one call (its HEADERS
block, captured from a live Envoy, then the DATA frame), with the answers written to a
transport that drops them. What is measured is everything the sidecar does per call after the
socket read and before the socket write: HTTP/2 frames, HPACK, the plan, the decision, the
answer, the metrics. Not measured: the event loop's select and the two system calls.

With ``--socket`` the sidecar serves its real unix socket on its event loop instead, and a
client process (not counted: valgrind does not follow it) writes the same bytes, one call at a
time, reading each answer before the next: the event loop and the system calls' user-space
side are then counted too. Reports are off in both (their cost follows the clock, not calls).

    python -m bench.envoy_sidecar_calls                 # CPU µs per call (process time)
    python -m bench.envoy_sidecar_calls --profile       # cProfile, top functions
    python -m bench.envoy_sidecar_calls --callgrind     # instructions per call (valgrind)
    python -m bench.envoy_sidecar_calls --callgrind --socket
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hpack
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest

from bench.callgrind import instructions
from bench.envoy_stacks import policy_yaml
from ratekeeper.server.app import settle_gc
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.sidecar.app import Sidecar, SidecarOptions
from ratekeeper.sidecar.methods import SHOULD_RATE_LIMIT, should_rate_limit
from ratekeeper.transport.h2.serving import _Connection

__all__ = ["envoy_calls", "main"]

#: The headers Envoy 1.40's gRPC client sends on each RLS call to the guide's sidecar cluster.
ENVOY_HEADERS = (
    (b":method", b"POST"),
    (b":path", SHOULD_RATE_LIMIT),
    (b":authority", b"ratekeeper_sidecar"),
    (b":scheme", b"http"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"50m"),
    (b"content-type", b"application/grpc"),
    (b"x-envoy-internal", b"true"),
    (b"x-forwarded-for", b"192.0.2.2"),
    (b"x-envoy-expected-rq-timeout-ms", b"50"),
)
_USERS = 100
#: The most calls one replay makes.
_MAX_CALLS = 20_000
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEAD = struct.Struct(">I B I")


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) << 8 | kind, flags, stream) + payload


def envoy_calls(count: int) -> list[bytes]:
    """``count`` reads as Envoy writes them: the connection's opening (preface, SETTINGS,
    WINDOW_UPDATE, the ACK of ours) first, then each call's HEADERS and DATA in one read, the
    benchmark's 100 rotating users."""
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    block = encoder.encode(ENVOY_HEADERS, huffman=True)  # the table-size update: first only
    steady = encoder.encode(ENVOY_HEADERS, huffman=True)
    # Envoy's opening: no table, a 256 MiB stream window and a connection window to match.
    settings = struct.pack(">HIHI", 1, 0, 4, 1 << 28)
    opening = _PREFACE + _frame(4, 0, 0, settings) + _frame(8, 0, 0, struct.pack(">I", 1 << 28))
    opening += _frame(4, 1, 0, b"")
    reads = []
    for i in range(count):
        request = RateLimitRequest(domain="rl")
        descriptor = request.descriptors.add()
        descriptor.entries.add(key="route", value="root")
        descriptor.entries.add(key="user", value=f"u{i % _USERS}")
        message = request.SerializeToString()
        body = b"\x00" + struct.pack(">I", len(message)) + message
        stream = 2 * i + 1
        head = _frame(1, 0x4, stream, block if i == 0 else steady)
        reads.append((opening if i == 0 else b"") + head + _frame(0, 0x1, stream, body))
    return reads


class _Sink(asyncio.Transport):
    """A transport that takes the writes and drops them."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass


def _sidecar(tmp: Path, **settings: Any) -> Sidecar:
    """A sidecar on the benchmark's policy whose reports never fall due."""
    policy = tmp / "policy"
    policy.mkdir()
    (policy / "rl.yaml").write_text(policy_yaml())
    values = with_options(
        ServerSettings(), grpc_port=0, http_port=0, config=str(policy), **settings
    )
    return Sidecar(values, SidecarOptions(("127.0.0.1:9",), report_interval=3600))


def _client(path: str, calls: int, warm: int) -> None:
    """Envoy's bytes for ``warm + calls`` calls to the socket at ``path``, one at a time."""
    reads = envoy_calls(warm + calls + 1)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(reads[0])  # the opening and a first call: answered with our SETTINGS
        answers = b""
        while answers.count(b"grpc-status") < 1:
            answers += sock.recv(65_536)
        for data in reads[1:]:
            sock.sendall(data)
            answer = sock.recv(65_536)
            while b"grpc-status" not in answer:  # the trailers close each answer
                answer += sock.recv(65_536)


async def _serve(calls: int, warm: int) -> None:
    """The sidecar on its unix socket until a client process has made its calls."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sidecar.sock")
        sidecar = _sidecar(Path(tmp), grpc_uds=path)
        await sidecar.start()
        settle_gc()
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.envoy_sidecar_calls", "--client", path,
            "--calls", str(calls), "--warm", str(warm),
        )  # fmt: skip
        if await client.wait():
            raise RuntimeError("the client process failed")
        await sidecar.stop(0)


async def _replay(calls: int, warm: int, profile: bool) -> float:
    """CPU µs per call over ``calls`` calls, after ``warm``."""
    with tempfile.TemporaryDirectory() as tmp:
        sidecar = _sidecar(Path(tmp))
        # The sidecar's own ShouldRateLimit, on one connection's protocol (uds.UdsServer makes
        # one per accepted socket; here there is no socket).
        methods = {SHOULD_RATE_LIMIT: should_rate_limit(sidecar.decider, sidecar.metrics)}
        connection = _Connection(methods, set())
        connection.connection_made(_Sink())
        # As many reads built whatever ``calls`` is: under callgrind, building them cancels out.
        reads = envoy_calls(warm + max(calls, _MAX_CALLS))[: warm + calls]
        for data in reads[:warm]:
            connection.data_received(data)
        settle_gc()
        profiler = cProfile.Profile() if profile else None
        start = time.process_time()
        if profiler:
            profiler.enable()
        for data in reads[warm:]:
            connection.data_received(data)
        if profiler:
            profiler.disable()
        spent = time.process_time() - start
        sidecar.reporter.close()
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return spent * 1e6 / max(calls, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.envoy_sidecar_calls", description=__doc__
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--warm", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--socket", action="store_true", help="the real socket and event loop")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls > _MAX_CALLS:
        parser.error(f"at most {_MAX_CALLS} calls")
    if args.client:
        _client(args.client, args.calls, args.warm)
        return 0
    if args.callgrind:
        counts = []
        for calls in (0, args.calls):
            child = ["--child", "--calls", str(calls), "--warm", str(args.warm)]
            child += ["--socket"] if args.socket else []
            counts.append(instructions("bench.envoy_sidecar_calls", child, 900))
        print(f"instructions per call: {(counts[1] - counts[0]) / args.calls:,.0f}")
        return 0
    if args.socket:
        started = time.process_time()
        asyncio.run(_serve(args.calls, args.warm))
        if not args.child:
            spent = (time.process_time() - started) * 1e6 / max(args.calls + args.warm, 1)
            print(f"CPU per call, start-up included: {spent:.1f} µs")
        return 0
    per_call = asyncio.run(_replay(args.calls, args.warm, args.profile))
    if not args.child:
        print(f"CPU per call: {per_call:.1f} µs ({args.calls} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
