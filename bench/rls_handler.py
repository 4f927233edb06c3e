"""In-process cost of the ``ShouldRateLimit`` handler alone: ratekeeper's vs the no-op's.

No gRPC, no sockets: each servicer is awaited directly on the benchmark's requests, with the
work gRPC does around it: the no-op is registered with the generated protobuf (de)serializers, so
its request is parsed and its response serialized; ratekeeper's servicer takes and returns
bytes (``server.rls``). Timed in CPU time (``time.process_time``), so the figure is the Python
work per call, free of the machine's scheduling noise. ``bench.rls_bench`` prints it under its
table; the end-to-end figures there add the gRPC floor on top.

    python -m bench.rls_handler
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest

from bench.noop_rls import NoopRateLimitService
from bench.rls_load import WORKLOAD_CONFIG, workload_requests
from ratekeeper.server.app import build
from ratekeeper.server.options import with_options
from ratekeeper.server.rls_servicer import RlsServicer
from ratekeeper.server.settings import ServerSettings

__all__ = ["Call", "handler_cpu_us", "main", "serialized", "servicers"]


#: How gRPC calls a handler: the request's bytes in, the response's bytes out.
Call = Callable[[Any, bytes], Awaitable[bytes]]


async def _noop_call(servicer: Any, request: bytes) -> bytes:
    message = RateLimitRequest.FromString(request)
    response = await servicer.ShouldRateLimit(message, None)
    return bytes(response.SerializeToString())


async def _bytes_call(servicer: Any, request: bytes) -> bytes:
    return bytes(await servicer.ShouldRateLimit(request, None))


async def _cpu_us_per_call(
    call: Call,
    servicer: Any,
    requests: list[bytes],
    calls: int,
) -> float:
    began = time.process_time()
    for i in range(calls):
        await call(servicer, requests[i % len(requests)])
    return 1e6 * (time.process_time() - began) / calls


def servicers(clock: Callable[[], int] = time.time_ns) -> dict[str, tuple[Call, Any]]:
    """Each handler by name, with how gRPC would call it: ratekeeper on the workload's policy,
    deciding at ``clock``'s time."""
    with tempfile.TemporaryDirectory(prefix="rls-handler-") as tmp:
        (Path(tmp) / "bench.yaml").write_text(WORKLOAD_CONFIG)
        components = build(with_options(ServerSettings(), config=tmp), clock)
    return {
        "no-op": (_noop_call, NoopRateLimitService()),
        "ratekeeper": (_bytes_call, RlsServicer(components.decider, components.metrics, clock)),
    }


def serialized(count: int) -> list[bytes]:
    """The benchmark's requests over ``count`` keys (the first ``count`` are distinct), as bytes."""
    return [request.SerializeToString() for request in workload_requests(count)]


async def _measure(rounds: int, calls: int) -> dict[str, float]:
    handlers = servicers()
    requests = serialized(1000)
    samples: dict[str, list[float]] = {name: [] for name in handlers}
    for _ in range(rounds):  # interleaved, like the end-to-end benchmark
        for name, (call, servicer) in handlers.items():
            samples[name].append(await _cpu_us_per_call(call, servicer, requests, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def handler_cpu_us(rounds: int = 5, calls: int = 20_000) -> dict[str, float]:
    """Median CPU µs per call of each handler, by name."""
    return asyncio.run(_measure(rounds, calls))


def main() -> None:
    figures = handler_cpu_us()
    print(", ".join(f"{name} {us:.1f} µs" for name, us in figures.items()))


if __name__ == "__main__":
    main()
