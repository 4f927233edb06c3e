"""Garbage collection under the RLS workload: how often it runs, and how long it stops the loop.

Every counter the memory store holds and every cached request plan is a handful of Python
objects that CPython's cyclic collector tracks, and a full collection walks all of them. This
drives ratekeeper's ``ShouldRateLimit`` handler in-process (``bench.rls_handler``, no gRPC) over
the end-to-end benchmark's traffic, with the collector set up as ``ratekeeper serve`` sets it
(``server.app.settle_gc``), and times every collection through ``gc.callbacks``. Each key count
runs in a fresh interpreter: the collector's state is process-wide.

Per key count it reports the share of the run's wall time spent collecting, the full
collections and the longest pause, and what one full collection costs at the end of the run
(the pause an unlucky call waits behind, whenever one falls due).

    python -m bench.gc_pauses                      # 1 000, 100 000 and 250 000 keys; ~2 min
    python -m bench.gc_pauses --keys 100000 --passes 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from bench.rls_handler import serialized, servicers
from ratekeeper.server.app import settle_gc

__all__ = ["GcRun", "main", "measure", "render"]


@dataclass
class GcRun:
    """What the collector did while one key count's traffic was served."""

    keys: int
    calls: int
    wall_s: float
    #: Collections and the seconds they took, by generation (0, 1, 2).
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    paused_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest_s: float = 0.0
    #: Objects the collector tracks at the end (frozen start-up objects excluded).
    tracked: int = 0
    #: One full collection, forced at the end.
    full_s: float = 0.0


async def measure(keys: int, passes: int) -> GcRun:
    """Serve ``passes`` passes over the traffic of ``keys`` keys; time every collection."""
    call, servicer = servicers()["ratekeeper"]
    requests = serialized(keys) * passes
    run = GcRun(keys, len(requests), 0.0)
    started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        paused = time.perf_counter() - started
        run.collections[info["generation"]] += 1
        run.paused_s[info["generation"]] += paused
        run.longest_s = max(run.longest_s, paused)

    settle_gc()
    gc.callbacks.append(on_gc)
    began = time.perf_counter()
    for request in requests:
        await call(servicer, request)
    run.wall_s = time.perf_counter() - began
    gc.callbacks.remove(on_gc)
    del requests
    run.tracked = len(gc.get_objects())
    began = time.perf_counter()
    gc.collect()
    run.full_s = time.perf_counter() - began
    return run


def _child(keys: int, passes: int) -> GcRun:
    argv = [sys.executable, "-m", "bench.gc_pauses", "--child", str(keys), "--passes", str(passes)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=True)
    return GcRun(**json.loads(done.stdout))


def render(runs: list[GcRun]) -> str:
    """The results as a markdown table."""
    lines = [
        "| keys | calls | tracked objects | time collecting | full collections "
        "| longest pause | one full collection |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        share = sum(r.paused_s) / r.wall_s if r.wall_s else 0.0
        lines.append(
            f"| {r.keys:,} | {r.calls:,} | {r.tracked:,} | {share:.1%} | {r.collections[2]} "
            f"| {r.longest_s * 1e3:.1f} ms | {r.full_s * 1e3:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1000, 100_000, 250_000])
    parser.add_argument("--passes", type=int, default=2, help="passes over each key count")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asdict(asyncio.run(measure(args.child, args.passes)))))
        return
    print(render([_child(keys, args.passes) for keys in args.keys]))


if __name__ == "__main__":
    main()
