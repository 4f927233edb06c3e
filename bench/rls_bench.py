"""Envoy RLS benchmark: ``ShouldRateLimit`` throughput and latency, ratekeeper vs a no-op server.

Variants, each with one and with two server processes:

* ``no-op``: ``bench.noop_rls``, a no-op servicer with the generated protobuf stubs: the
  reference every ratio is taken against;
* ``no-op-raw``: ``bench.noop_rls --raw``, registered without (de)serializers as ratekeeper is,
  answering fixed bytes: gRPC alone, the floor under any Python RLS server;
* ``ratekeeper``: ``ratekeeper serve`` with ``bench.rls_load.WORKLOAD_CONFIG``.

Two processes are two independent servers that each own half of the key hash space; the load
process sends every key to its owner. That is the sharded architecture. A shared SO_REUSEPORT
port would be faster to set up but would split one key's hits across two sets of buckets, so
each would admit the full limit: it is deliberately not offered.

Load comes from a separate process (``bench.rls_load``) so the servers' CPU can be measured
alone. The machine is shared and noisy, so variants are interleaved in every round (the order
rotates), each figure is the median over rounds, and the comparison with the no-op is a ratio
taken within each round. A closed-loop pass (as fast as the servers answer) is followed by a
paced one (the same offered rate for every variant), and the handler alone is timed in-process
(``bench.rls_handler``).

    python -m bench.rls_bench                 # 5 rounds x 5 s per variant and pass (~8 min)
    python -m bench.rls_bench --rounds 1 --duration 2   # a quick look
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.noop_rls import READY_LINE
from bench.rls_handler import handler_cpu_us
from bench.rls_load import WORKLOAD_CONFIG
from ratekeeper.testing.procs import ManagedProcess, free_port, log_line, start
from ratekeeper.testing.server_process import ratekeeper_server

__all__ = ["Sample", "main"]

KINDS = ("no-op", "no-op-raw", "ratekeeper")
PROCESS_COUNTS = (1, 2)


@dataclass(frozen=True, slots=True)
class Sample:
    """One load run against one variant."""

    #: Completed calls per second in the measured window.
    rps: float
    #: Latency percentiles seen by the load process, in milliseconds.
    p50_ms: float
    p99_ms: float
    #: CPU used by each targeted server process, as a percentage of one core.
    server_cpu_pct: tuple[float, ...]
    #: Server CPU microseconds per call (all targeted servers together).
    cpu_us_per_call: float
    #: CPU used by the load process, as a percentage of one core.
    load_cpu_pct: float
    #: Share of answers that were OVER_LIMIT, and failed calls.
    over_limit_share: float
    errors: int


def _percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


@contextlib.contextmanager
def _noop_server(
    log_dir: Path, name: str, raw: bool = False
) -> Iterator[tuple[ManagedProcess, str]]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.noop_rls", "--grpc-port", str(port)]
    argv += ["--raw"] if raw else []
    with start(argv, name=name, log_dir=log_dir, ready=log_line(READY_LINE)) as proc:
        yield proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def _ratekeeper_server(
    log_dir: Path, name: str, config_dir: Path, profile_dir: Path | None
) -> Iterator[tuple[ManagedProcess, str]]:
    python_args: list[str] = []
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        python_args = ["-m", "cProfile", "-o", str(profile_dir / f"{name}.prof")]
    with ratekeeper_server(config_dir, log_dir, name=name, python_args=python_args) as server:
        yield server.process, server.grpc_target


def _load(
    servers: list[tuple[ManagedProcess, str]], args: argparse.Namespace, rate: float, work_dir: Path
) -> Sample:
    latency_file = work_dir / "latencies.bin"
    argv = [sys.executable, "-m", "bench.rls_load", "--latency-file", str(latency_file)]
    for proc, target in servers:
        argv += ["--target", target, "--server-pid", str(proc.pid)]
    argv += ["--concurrency", str(args.concurrency), "--keys", str(args.keys)]
    argv += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--rate", str(rate)]
    timeout = args.duration + args.warmup + 60
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load process failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    latencies = array.array("q")
    latencies.frombytes(latency_file.read_bytes())
    ordered = sorted(latencies)
    calls, wall = int(result["calls"]), float(result["wall_s"])
    if not ordered:
        raise RuntimeError(f"no call completed in the measured window: {result}")
    cpu = [float(s) for s in result["server_cpu_s"]]
    return Sample(
        rps=calls / wall,
        p50_ms=_percentile(ordered, 0.50),
        p99_ms=_percentile(ordered, 0.99),
        server_cpu_pct=tuple(100 * c / wall for c in cpu),
        cpu_us_per_call=1e6 * sum(cpu) / calls,
        load_cpu_pct=100 * float(result["load_cpu_s"]) / wall,
        over_limit_share=int(result["over_limit"]) / calls,
        errors=int(result["errors"]),
    )


Samples = dict[tuple[str, int], list[Sample]]


def _measure(args: argparse.Namespace, work_dir: Path) -> tuple[Samples, float, Samples]:
    """Start two servers of each kind once; run every variant closed-loop, then paced.

    The paced runs offer every variant the same rate (half the slowest closed-loop median, or
    ``--rate``), so CPU per call compares work per call at equal load: in a closed loop a
    slower server also batches fewer calls per event-loop wake-up, which inflates its cost.
    """
    config_dir = work_dir / "config"
    config_dir.mkdir()
    (config_dir / "bench.yaml").write_text(WORKLOAD_CONFIG)
    logs = work_dir / "logs"
    with contextlib.ExitStack() as stack:
        pools = {"no-op": [stack.enter_context(_noop_server(logs, f"noop-{i}")) for i in range(2)]}
        if "no-op-raw" in args.kinds:
            pools["no-op-raw"] = [
                stack.enter_context(_noop_server(logs, f"noop-raw-{i}", raw=True)) for i in range(2)
            ]
        if "ratekeeper" in args.kinds:
            pools["ratekeeper"] = [
                stack.enter_context(
                    _ratekeeper_server(logs, f"ratekeeper-{i}", config_dir, args.profile)
                )
                for i in range(2)
            ]
        closed = _rounds(pools, args, 0.0, work_dir)
        rate = args.rate or max(100.0, min(_median(r, "rps") for r in closed.values()) // 200 * 100)
        paced = _rounds(pools, args, rate, work_dir)
    return closed, rate, paced


def _rounds(
    pools: dict[str, list[tuple[ManagedProcess, str]]],
    args: argparse.Namespace,
    rate: float,
    work_dir: Path,
) -> Samples:
    """Every variant once per round; the order rotates so none always runs first."""
    samples: Samples = {}
    variants = [(kind, n) for n in PROCESS_COUNTS for kind in KINDS if kind in pools]
    for round_no in range(args.rounds):
        shift = round_no % len(variants)
        for kind, n in variants[shift:] + variants[:shift]:
            sample = _load(pools[kind][:n], args, rate, work_dir)
            samples.setdefault((kind, n), []).append(sample)
            label = f"rate {rate:.0f}/s" if rate else "closed loop"
            print(f"{label} round {round_no + 1} {kind} x{n}: {sample}", file=sys.stderr)
    return samples


def _median(samples: list[Sample], attr: str) -> float:
    return statistics.median(float(getattr(s, attr)) for s in samples)


def render(samples: Samples) -> str:
    """The markdown table: medians per variant, and per-round ratios against the no-op."""
    head = (
        "| server | processes | requests/s | p50 ms | p99 ms | server CPU % (per process) "
        "| server CPU µs/call | load CPU % | requests/s vs no-op | CPU/call vs no-op |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for n in PROCESS_COUNTS:
        base = samples[("no-op", n)]
        for kind in KINDS:
            runs = samples.get((kind, n))
            if runs is None:
                continue
            per_proc = [statistics.median(s.server_cpu_pct[i] for s in runs) for i in range(n)]
            rps_ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, base, strict=True))
            cpu_ratio = statistics.median(
                r.cpu_us_per_call / b.cpu_us_per_call for r, b in zip(runs, base, strict=True)
            )
            rows.append(
                f"| {kind} | {n} | {_median(runs, 'rps'):,.0f} | {_median(runs, 'p50_ms'):.2f} "
                f"| {_median(runs, 'p99_ms'):.2f} | {' + '.join(f'{c:.0f}' for c in per_proc)} "
                f"| {_median(runs, 'cpu_us_per_call'):.0f} | {_median(runs, 'load_cpu_pct'):.0f} "
                f"| {rps_ratio:.2f} | {cpu_ratio:.2f} |"
            )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per run")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--keys", type=int, default=1000, help="distinct descriptors")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="paced runs' offered calls/s (0: half the slowest)"
    )
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="servers (no-op always)"
    )
    parser.add_argument(
        "--profile", type=Path, help="run ratekeeper under cProfile, writing <dir>/<name>.prof"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rls-bench-") as tmp:
        samples, rate, paced = _measure(args, Path(tmp))
    print(f"Closed loop ({args.concurrency} calls in flight):\n")
    print(render(samples))
    print(f"Paced at {rate:.0f} calls/s offered (same load for every variant):\n")
    print(render(paced))
    if "ratekeeper" in args.kinds:
        handler = ", ".join(f"{name} {us:.1f}" for name, us in handler_cpu_us().items())
        print(f"handler alone, in-process CPU µs/call (bench.rls_handler): {handler}")
    errors = sum(s.errors for runs in (*samples.values(), *paced.values()) for s in runs)
    print(f"failed calls: {errors}")
    if ("ratekeeper", 1) in samples:
        over = statistics.median(s.over_limit_share for s in samples[("ratekeeper", 1)])
        print(f"ratekeeper OVER_LIMIT share: {over:.1%}")


if __name__ == "__main__":
    main()
