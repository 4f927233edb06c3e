"""In-process cost of the ``ShouldRateLimit`` handler alone: ratekeeper's vs the no-op's.

No gRPC, no sockets: each servicer is awaited directly on the benchmark's requests and its
response serialised, timed in CPU time (``time.process_time``), so the figure is the Python
work ratekeeper adds per call, free of the machine's scheduling noise. ``bench.rls_bench`` prints
it under its table; the end-to-end figures there add the gRPC floor on top.

    python -m bench.rls_handler
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.noop_rls import NoopRateLimitService
from bench.rls_load import WORKLOAD_CONFIG, workload_requests
from ratekeeper.server.app import build
from ratekeeper.server.rls import RlsServicer
from ratekeeper.server.settings import ServerSettings

__all__ = ["handler_cpu_us", "main"]


async def _cpu_us_per_call(servicer: Any, requests: list[Any], calls: int) -> float:
    began = time.process_time()
    for i in range(calls):
        response = await servicer.ShouldRateLimit(requests[i % len(requests)], None)
        response.SerializeToString()
    return 1e6 * (time.process_time() - began) / calls


async def _measure(rounds: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rls-handler-") as tmp:
        (Path(tmp) / "bench.yaml").write_text(WORKLOAD_CONFIG)
        components = build(ServerSettings(config=tmp))
    servicers = {
        "no-op": NoopRateLimitService(),
        "ratekeeper": RlsServicer(components.service, components.metrics),
    }
    requests = workload_requests(1000)
    samples: dict[str, list[float]] = {name: [] for name in servicers}
    for _ in range(rounds):  # interleaved, like the end-to-end benchmark
        for name, servicer in servicers.items():
            samples[name].append(await _cpu_us_per_call(servicer, requests, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def handler_cpu_us(rounds: int = 5, calls: int = 20_000) -> dict[str, float]:
    """Median CPU µs per call of each handler, by name."""
    return asyncio.run(_measure(rounds, calls))


def main() -> None:
    figures = handler_cpu_us()
    print(", ".join(f"{name} {us:.1f} µs" for name, us in figures.items()))


if __name__ == "__main__":
    main()
