"""Server CPU per unary call with a no-op method: the report listener's HTTP/2 vs grpc.aio.

The per-call part of a report's cost, without the report: a grpcio client in another process
makes ``--calls`` sequential calls (a 400-byte request, about a compact 100-key report) to a
method that answers at once, served by :class:`~ratekeeper.transport.h2.serving.H2Server` or by
a ``grpc.aio`` server; printed is this process's CPU (``time.process_time``: every thread) per
call, each kind measured twice, alternating (the machine is shared: compare within a run).

    python -m bench.report_call_cost [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import grpc
import grpc.aio

from ratekeeper.transport.h2.serving import H2Server

__all__ = ["main", "server_cpu_per_call"]

_CLIENT = r"""
import grpc, sys
target, n = sys.argv[1], int(sys.argv[2])
with grpc.insecure_channel(target) as channel:
    call = channel.unary_unary("/bench.Noop/Call")
    for _ in range(200):
        call(b"x" * 400)
    print("warm", flush=True)
    sys.stdin.readline()
    for _ in range(n):
        call(b"x" * 400)
"""


async def _noop(request: bytes, context: Any = None) -> bytes:
    return b"ok"


async def server_cpu_per_call(kind: str, calls: int) -> float:
    """µs of this process's CPU per call, ``kind`` ``h2`` or ``grpc``."""
    h2: H2Server | None = None
    aio: grpc.aio.Server | None = None
    if kind == "h2":
        h2 = H2Server({b"/bench.Noop/Call": _noop})
        port = await h2.start_tcp("127.0.0.1", 0)
    else:
        aio = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(_noop)
        aio.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Noop", {"Call": handler}),)
        )
        port = aio.add_insecure_port("127.0.0.1:0")
        await aio.start()
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, f"127.0.0.1:{port}", str(calls),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert client.stdout is not None
    assert client.stdin is not None
    await client.stdout.readline()
    start = time.process_time()
    client.stdin.write(b"\n")
    await client.stdin.drain()
    await client.wait()
    spent = time.process_time() - start
    if h2 is not None:
        await h2.stop(0)
    if aio is not None:
        await aio.stop(0)
    return spent / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_call_cost")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"h2": [], "grpc": []}
        for kind in ("h2", "grpc", "h2", "grpc"):
            out[kind].append(round(await server_cpu_per_call(kind, args.calls), 1))
        return out

    print(json.dumps({"server_cpu_us_per_noop_call": asyncio.run(run())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
