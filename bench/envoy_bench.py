"""Envoy benchmark: request latency through every way of rate limiting Envoy, and accuracy.

For each network model (plain loopback, then the simulator's ``cloud`` model on every hop that
crosses hosts), :class:`bench.envoy_stacks.Stacks` starts each mode behind its own Envoy, from the
files docs/envoy.md publishes. Then:

1. **Latency**: each row in turn (``upstream``: wrk straight to the upstream, the floor under
   every row; then each mode) gets a ``--seconds`` slice of ``wrk -t1 -c1`` (back to back, or
   paced with ``--pace-ms``), rows interleaved over ``--rounds`` rounds, the order reversed every
   other round, each target's pair (RLQS and none, sidecar and legacy) back to back. While a row
   runs, unless ``--no-realtime``, the processes on its path and wrk run real-time
   (``SCHED_RR``) above anything else on the shared two cores (:mod:`bench.envoy_load`).
   Percentiles are pooled over all of a row's requests; the spread is the p99 of each half of
   the rounds (even and odd) taken apart. Each row carries its CPU time per request (from
   ``/proc``): its Envoy's, the rate limit process's (legacy and memory server, sidecar, RLQS's
   own server), its whole path's, and wrk's.
2. **Accuracy**: two Envoys per shared-limit mode (sidecar, RLQS) each offer 5× the limit of one
   user (10× together) for ``--accuracy-seconds``; admitted is compared with the policy
   ``C + r·T`` (capacity plus refill).

    python -m bench.envoy_bench                      # 20 rounds × 1 s, 30 s accuracy (~7 min)
    python -m bench.envoy_bench --networks loopback --rounds 4 --accuracy-seconds 0  # a look
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.envoy_load import Conditions, Slice, pooled, wrk, wrk_script
from bench.envoy_stacks import SHARED_LIMIT, Stacks
from bench.sim.spec import NetworkModel
from ratekeeper.testing.envoy_guide import offer

NETWORKS = {
    "loopback": NetworkModel(),
    # The seed's "P99 of 10 to 20 milliseconds between services in one cloud provider".
    "cloud": NetworkModel("lognormal", 2.0, 15.0, 5.0),
}


#: The order rows run in each round: each target's pair back to back. ``upstream`` is wrk
#: straight to the upstream (no front Envoy): the floor under every row.
RUN_ORDER = ("upstream", "none", "rlqs", "memory", "legacy", "sidecar")
#: The targets: (mode, baseline, bound on the ratio of their p99s).
TARGETS = (("rlqs", "none", 1.05), ("sidecar", "legacy", 0.5))
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 100.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


@dataclass(frozen=True, slots=True)
class Row:
    """One row's slices and its CPU per request (µs, medians over slices) by role: ``envoy``
    (its front Envoy), ``rls`` (the process answering its rate limit calls), ``path`` (every
    process on its path: Envoy, upstream, deciders, Redis, relays) and ``wrk``."""

    slices: list[Slice]
    cpu_us: dict[str, float]

    def p(self, percentile: float) -> float:
        return pooled(self.slices, percentile)

    def half(self, which: int, percentile: float = 99.0) -> float:
        """``percentile`` over every other round (0: even rounds, 1: odd): the spread of two
        independent halves of the run."""
        return pooled(self.slices[which::2], percentile)


def latency_rounds(
    stacks: Stacks, args: argparse.Namespace, script: Path, conditions: Conditions
) -> dict[str, Row]:
    """Each row's slices and CPU per request over ``args.rounds`` interleaved rounds."""
    ports = {**stacks.ports, "upstream": stacks.upstream_port}
    slices: dict[str, list[Slice]] = {mode: [] for mode in RUN_ORDER}
    cpu: dict[str, dict[str, list[float]]] = {mode: {} for mode in RUN_ORDER}
    for mode in RUN_ORDER:  # warm every path (connections, first-sight caches) before timing
        with conditions.measuring(stacks.paths[mode]):
            wrk(ports[mode], 1, script, realtime=conditions.realtime)
    for round_ in range(args.rounds):
        order = RUN_ORDER if round_ % 2 == 0 else tuple(reversed(RUN_ORDER))
        for mode in order:
            path = stacks.paths[mode]
            roles = {"envoy": {stacks.envoys.get(mode)}, "rls": {stacks.deciders.get(mode)}}
            roles = {role: {p for p in pids if p} for role, pids in roles.items()}
            roles["path"] = set(path)
            with conditions.measuring(path):
                before = {pid: cpu_seconds(pid) for pid in path}
                wrk_before = _children_cpu()
                got = wrk(ports[mode], args.seconds, script, realtime=conditions.realtime)
                spent = {pid: cpu_seconds(pid) - before[pid] for pid in path}
                wrk_spent = _children_cpu() - wrk_before
            slices[mode].append(got)
            per = 1e6 / max(got.requests, 1)
            for role, pids in roles.items():
                if pids:
                    cpu[mode].setdefault(role, []).append(sum(spent[p] for p in pids) * per)
            cpu[mode].setdefault("wrk", []).append(wrk_spent * per)
    return {
        mode: Row(slices[mode], {r: statistics.median(v) for r, v in cpu[mode].items()})
        for mode in RUN_ORDER
    }


def accuracy(stacks: Stacks, seconds: float) -> dict[str, tuple[int, float]]:
    """Admitted and the policy's allowance for each shared-limit mode, all run at once."""
    offered = 5 * SHARED_LIMIT  # per Envoy; two Envoys: 10× the limit
    counts: dict[tuple[str, int], int] = {}
    sent: dict[str, list[int]] = {"sidecar": [], "rlqs": []}
    began = time.monotonic()
    until = began + seconds

    def run(mode: str, which: int, port: int) -> None:
        counts[mode, which] = offer(port, f"shared-{mode}", offered, until, sent[mode])

    threads = [
        threading.Thread(target=run, args=(mode, which, ports[mode]))
        for mode in ("sidecar", "rlqs")
        for which, ports in enumerate((stacks.ports, stacks.second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    allowed = SHARED_LIMIT + SHARED_LIMIT * elapsed
    for mode, requests in sent.items():
        print(f"{mode}: offered {sum(requests) / elapsed:.1f}/s in all", flush=True)
    return {mode: (counts[mode, 0] + counts[mode, 1], allowed) for mode in ("sidecar", "rlqs")}


def _table(name: str, rows: dict[str, Row]) -> list[str]:
    none = rows["none"].p(99)
    lines = [
        f"\n### network: {name}\n",
        "| row | requests | errors | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs "
        "| p99 halves µs | p99 vs none | CPU µs/req: Envoy | RLS process | whole path | wrk |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for mode, row in rows.items():
        p50, p90, p99, p999, worst = (row.p(p) for p in PERCENTILES)
        requests = sum(s.requests for s in row.slices)
        errors = sum(s.errors for s in row.slices)
        cpu = row.cpu_us
        lines.append(
            f"| {mode} | {requests:,} | {errors} | {p50:.0f} | {p90:.0f} | {p99:.0f} | "
            f"{p999:.0f} | {worst:.0f} | {row.half(0):.0f} / {row.half(1):.0f} | "
            f"{p99 / none:.3f}× | {_us(cpu.get('envoy'))} | {_us(cpu.get('rls'))} | "
            f"{_us(cpu.get('path'))} | {_us(cpu.get('wrk'))} |"
        )
    lines.append("")
    for mode, base, bound in TARGETS:
        ratio = rows[mode].p(99) / rows[base].p(99)
        halves = [rows[mode].half(h) / rows[base].half(h) for h in (0, 1)]
        lines.append(
            f"{mode} p99 / {base} p99 = {ratio:.3f} (target ≤ {bound}: {_verdict(ratio <= bound)});"
            f" in each half of the rounds: {halves[0]:.3f}, {halves[1]:.3f}"
        )
        added = [rows[m].p(99) - rows["none"].p(99) for m in (mode, base)]
        lines.append(
            f"  p99 added to none's: {mode} {added[0]:+.0f} µs, {base} {added[1]:+.0f} µs; "
            f"p50 added: {rows[mode].p(50) - rows['none'].p(50):+.0f} µs, "
            f"{rows[base].p(50) - rows['none'].p(50):+.0f} µs"
        )
    return lines


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _accuracy_table(rows: list[tuple[str, str, int, float]], seconds: float) -> list[str]:
    lines = [
        f"\n### accuracy: two Envoys at 10× of {SHARED_LIMIT}/s for {seconds:.0f} s\n",
        "| network | mode | admitted | policy C + r·T | run-long vs policy | target |",
        "|---|---|---|---|---|---|",
    ]
    for network, mode, admitted, allowed in rows:
        over = (admitted - allowed) / allowed
        target = 0.02 if mode == "sidecar" else 0.05
        # Admitting far less than the policy is a failure too, if not the one the target names.
        verdict = _verdict(over <= target) if over > -0.2 else "met, but under-admits"
        lines.append(
            f"| {network} | {mode} | {admitted} | {allowed:.0f} | {over:+.1%} | "
            f"≤ {target:.0%}: {verdict} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.envoy_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=1, help="per row and round")
    parser.add_argument(
        "--pace-ms", type=int, default=0, help="ms between an answer and the next request [0]"
    )
    parser.add_argument(
        "--no-realtime",
        action="store_true",
        help="leave the measured processes at ordinary priority (needed without root)",
    )
    parser.add_argument("--accuracy-seconds", type=float, default=30.0)
    parser.add_argument("--networks", default="loopback,cloud")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk; make sysdeps does)", file=sys.stderr)
        return 2
    realtime = not args.no_realtime and Conditions.realtime_allowed()
    pacing = f"paced {args.pace_ms} ms" if args.pace_ms else "back to back"
    lines = [
        f"wrk -t1 -c1 {pacing}, {args.rounds} rounds × {args.seconds} s per row, measured path "
        f"{'SCHED_RR' if realtime else 'at ordinary priority'}; percentiles pooled"
    ]
    rows: list[tuple[str, str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="envoy-bench-") as tmp:
        script = Path(tmp) / "users.lua"
        script.write_text(wrk_script(args.pace_ms))
        for name in args.networks.split(","):
            workdir = Path(tmp) / name
            workdir.mkdir()
            with Stacks(NETWORKS[name], workdir) as stacks:
                conditions = Conditions(realtime)
                lines += _table(name, latency_rounds(stacks, args, script, conditions))
                if args.accuracy_seconds > 0:
                    for mode, (admitted, allowed) in accuracy(
                        stacks, args.accuracy_seconds
                    ).items():
                        rows.append((name, mode, admitted, allowed))
            print("\n".join(lines), flush=True)
            lines = []
    if rows:
        print("\n".join(_accuracy_table(rows, args.accuracy_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
