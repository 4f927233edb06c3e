"""Envoy benchmark: request latency through every way of rate limiting Envoy, and accuracy.

For each network model (plain loopback, then the simulator's ``cloud`` model on every hop that
crosses hosts), :class:`bench.envoy_stacks.Stacks` starts each mode behind its own Envoy, from the
files docs/envoy.md publishes. Then:

1. **Latency**: ``wrk`` (one thread, ``--connections`` connections, back to back) sends
   ``GET /`` with a rotating ``x-user`` through each mode's Envoy for ``--seconds``, modes
   interleaved over ``--rounds`` rounds (the order reversed every other round, since the machine
   is shared and noisy; each target's pair — RLQS and none, sidecar and legacy — run back to
   back); each figure is the median over rounds of that round's percentile. The targets' ratios
   are also taken within each round (the pair ran seconds apart) and their median printed. Each
   mode's row carries the CPU time per request of its Envoy and of the process answering its
   rate limit calls (legacy and memory server, sidecar; for RLQS its own server),
   read from ``/proc``: the machine's noise moves these far less than latency.
2. **Accuracy**: two Envoys per shared-limit mode (sidecar, RLQS) each offer 5× the limit of one
   user (10× together) for ``--accuracy-seconds``; admitted is compared with the policy
   ``C + r·T`` (capacity plus refill).

    python -m bench.envoy_bench                      # 5 rounds × 4 s, 30 s accuracy (~6 min)
    python -m bench.envoy_bench --rounds 1 --seconds 2 --accuracy-seconds 5   # a quick look
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.envoy_stacks import MODES, SHARED_LIMIT, Stacks
from bench.sim.spec import NetworkModel
from ratekeeper.testing.envoy_guide import offer

NETWORKS = {
    "loopback": NetworkModel(),
    # The seed's "P99 of 10 to 20 milliseconds between services in one cloud provider".
    "cloud": NetworkModel("lognormal", 2.0, 15.0, 5.0),
}

_WRK_SCRIPT = """\
local n = 0
request = function()
  n = n + 1
  wrk.headers["x-user"] = "u" .. (n % 100)
  return wrk.format("GET", "/")
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


#: The order modes run in each round: each target's pair back to back.
RUN_ORDER = ("none", "rlqs", "memory", "legacy", "sidecar")
#: The targets: (mode, baseline, bound on the ratio of their p99s).
TARGETS = (("rlqs", "none", 1.05), ("sidecar", "legacy", 0.5))


@dataclass(frozen=True, slots=True)
class Latency:
    """One wrk run: requests, errors (non-2xx included), percentiles in microseconds."""

    requests: int
    errors: int
    p50: float
    p99: float
    p999: float
    max: float


def wrk(port: int, seconds: int, connections: int, script: Path) -> Latency:
    """One wrk run against Envoy's listener on ``port``."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    argv += [f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")
    requests, errors, p50, p99, p999, worst = (int(v) for v in found.groups())
    return Latency(requests, errors, p50, p99, p999, worst)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Rounds:
    """Every round's figures of one network: what the tables print."""

    #: Each mode's median-over-rounds latency.
    latency: dict[str, Latency]
    #: Each target's p99 ratio in each round (``TARGETS`` order).
    ratios: list[list[float]]
    #: CPU µs per request of each mode's Envoy (median over rounds).
    envoy_cpu_us: dict[str, float]
    #: CPU µs per request of the process answering each mode's rate limit calls (median over
    #: rounds; the RLQS server's for ``rlqs``; none for ``none``).
    rls_cpu_us: dict[str, float]


def latency_rounds(stacks: Stacks, args: argparse.Namespace, script: Path) -> Rounds:
    """Each mode's latency and CPU per request over ``args.rounds`` interleaved rounds."""
    runs: dict[str, list[Latency]] = {mode: [] for mode in MODES}
    envoy_cpu: dict[str, list[float]] = {mode: [] for mode in stacks.envoys}
    rls_cpu: dict[str, list[float]] = {mode: [] for mode in stacks.deciders}
    for mode in RUN_ORDER:  # warm every path (connections, first-sight caches) before timing
        wrk(stacks.ports[mode], 1, args.connections, script)
    for round_ in range(args.rounds):
        order = RUN_ORDER if round_ % 2 == 0 else tuple(reversed(RUN_ORDER))
        for mode in order:
            pids = {"envoy": stacks.envoys.get(mode), "rls": stacks.deciders.get(mode)}
            before = {role: cpu_seconds(pid) for role, pid in pids.items() if pid}
            got = wrk(stacks.ports[mode], args.seconds, args.connections, script)
            runs[mode].append(got)
            for role, into in (("envoy", envoy_cpu), ("rls", rls_cpu)):
                pid = pids[role]
                if pid:
                    spent = cpu_seconds(pid) - before[role]
                    into[mode].append(spent * 1e6 / max(got.requests, 1))
    latency = {
        mode: Latency(
            sum(r.requests for r in got),
            sum(r.errors for r in got),
            statistics.median(r.p50 for r in got),
            statistics.median(r.p99 for r in got),
            statistics.median(r.p999 for r in got),
            max(r.max for r in got),
        )
        for mode, got in runs.items()
    }
    ratios = [
        [a.p99 / b.p99 if b.p99 else float("nan") for a, b in zip(runs[m], runs[base], strict=True)]
        for m, base, _ in TARGETS
    ]
    return Rounds(
        latency,
        ratios,
        {m: statistics.median(v) for m, v in envoy_cpu.items()},
        {m: statistics.median(v) for m, v in rls_cpu.items()},
    )


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


def _table(name: str, rounds: Rounds) -> list[str]:
    results = rounds.latency
    none = results["none"].p99
    lines = [
        f"\n### network: {name}\n",
        "| mode | requests | errors | p50 µs | p99 µs | p99.9 µs | max µs | p99 vs none "
        "| Envoy CPU µs/req | RLS process CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        ratio = r.p99 / none if none else float("nan")
        lines.append(
            f"| {mode} | {r.requests:,} | {r.errors} | {r.p50:.0f} | {r.p99:.0f} | "
            f"{r.p999:.0f} | {r.max:.0f} | {ratio:.3f}× | {_us(rounds.envoy_cpu_us.get(mode))} | "
            f"{_us(rounds.rls_cpu_us.get(mode))} |"
        )
    lines.append("")
    for (mode, base, bound), per_round in zip(TARGETS, rounds.ratios, strict=True):
        ratio = results[mode].p99 / results[base].p99 if results[base].p99 else float("nan")
        paired = statistics.median(per_round)
        lines.append(
            f"{mode} p99 / {base} p99 = {ratio:.3f} (target ≤ {bound}: {_verdict(ratio <= bound)});"
            f" within each round: {' '.join(f'{r:.2f}' for r in per_round)}, median {paired:.3f}"
            f" ({_verdict(paired <= bound)})"
        )
        lines.append(f"  CPU µs per request, Envoy + RLS process: {mode} {_cpu(rounds, mode)}, "
                     f"{base} {_cpu(rounds, base)}")  # fmt: skip
    return lines


def _cpu(rounds: Rounds, mode: str) -> str:
    envoy, rls = rounds.envoy_cpu_us.get(mode, 0.0), rounds.rls_cpu_us.get(mode, 0.0)
    return f"{envoy + rls:.0f} ({envoy:.0f} + {rls:.0f})"


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4, help="per mode and round")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--accuracy-seconds", type=float, default=30.0)
    parser.add_argument("--networks", default="loopback,cloud")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk; make sysdeps does)", file=sys.stderr)
        return 2
    lines = [
        f"wrk -t1 -c{args.connections}, {args.rounds} rounds × {args.seconds} s per mode; "
        "medians over rounds"
    ]
    rows: list[tuple[str, str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="envoy-bench-") as tmp:
        script = Path(tmp) / "users.lua"
        script.write_text(_WRK_SCRIPT)
        for name in args.networks.split(","):
            workdir = Path(tmp) / name
            workdir.mkdir()
            with Stacks(NETWORKS[name], workdir) as stacks:
                lines += _table(name, latency_rounds(stacks, args, script))
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
