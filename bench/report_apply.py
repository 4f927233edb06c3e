"""Server CPU per reported key-update: the report path from request bytes to response bytes.

``--clients`` clients each report the same ``--keys`` keys every round (steady state: every key
already known, as in a fleet's 100 ms cycles), through what a ``Report`` RPC runs on the server
minus gRPC itself: decode the request bytes, ``ReportServicer.report`` (resolve, debit, demand,
instructions, chunking), encode the response. The server's clock advances one report interval
per round. Printed: CPU µs per key-update (``time.process_time``; noisy on a shared machine)
and, with ``--callgrind``, instructions per key-update counted by valgrind, ``(I(N rounds) -
I(0 rounds)) / key-updates``, so start-up and warm-up cancel out (see bench.rls_instructions).

    python -m bench.report_apply [--wire compact]     # CPU time, ~10 s
    python -m bench.report_apply --callgrind          # instructions; needs valgrind, ~2 min
    python -m bench.report_apply --wire compact --gap-ms 2   # each report after 2 ms asleep
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import yaml

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.server.app import settle_gc
from ratekeeper.server.report_servicer import ReportServicer

__all__ = ["APPLY_CONFIG", "Workload", "cpu_per_key_update", "main", "report_requests"]

DOMAIN = "apply"
#: A nested per-user rule (the common shape) and an inline-limited domain it does not cover.
APPLY_CONFIG = f"""\
domain: {DOMAIN}
descriptors:
  - key: route
    value: api
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: 50}}
"""
_INTERVAL_NS = 100_000_000
_START_NS = 1_763_700_000 * NS_PER_SECOND
_COLLECTED = re.compile(rb"Collected : (\d+)")


def report_requests(
    clients: int, keys: int, rounds: int, first_sequence: int = 1, wire: str = "full"
) -> list[list[bytes]]:
    """Per round, each client's encoded report: the same ``keys`` keys per client every round
    (clients share none), 1-3 admitted hits each, numbered from ``first_sequence``.

    ``wire``: ``full`` (every key's descriptor, every time), ``intern`` (in full with a
    ``key_id``: the first report of a compact client) or ``compact`` (ids and packed counts,
    unchanged answers left out)."""
    out: list[list[bytes]] = []
    for r in range(rounds):
        per_client: list[bytes] = []
        for c in range(clients):
            request = pb.ReportRequest(
                client_id=f"client-{c}", interval_ns=_INTERVAL_NS, sequence=first_sequence + r
            )
            if wire == "compact":
                request.known_ids.extend(range(1, keys + 1))
                request.known_admitted.extend(1 + (k + r) % 3 for k in range(keys))
                request.known_rejected.extend([0] * keys)
                request.omit_unchanged = True
            else:
                for k in range(keys):
                    key = request.keys.add(domain=DOMAIN, admitted=1 + (k + r) % 3)
                    key.entries.add(key="route", value="api")
                    key.entries.add(key="user", value=f"u{c}-{k}")
                    key.key_id = k + 1 if wire == "intern" else 0
            per_client.append(request.SerializeToString())
        out.append(per_client)
    return out


class Workload:
    """One server's report path and the reports it is fed, warm (every key known)."""

    def __init__(self, clients: int, keys: int, rounds: int, wire: str = "full") -> None:
        policy = PolicyTree.from_mapping(yaml.safe_load(APPLY_CONFIG))
        self.now = _START_NS
        processor = ReportProcessor(StoreGate(MemoryStore()), lambda: policy)
        self.servicer = ReportServicer(processor, clock=self._clock)
        compact = wire == "compact"
        self.warm = report_requests(clients, keys, 1, wire="intern" if compact else wire)
        self.warm += report_requests(clients, keys, 1, first_sequence=2, wire=wire)
        self.rounds = report_requests(clients, keys, rounds, first_sequence=3, wire=wire)
        self.key_updates = clients * keys * rounds

    def _clock(self) -> int:
        return self.now

    async def run(self, batches: Sequence[Sequence[bytes]]) -> int:
        """Apply every report of ``batches`` (one batch per round); bytes answered."""
        sent = 0
        report, decode = self.servicer.report, pb.ReportRequest.FromString
        for batch in batches:
            self.now += _INTERVAL_NS
            for body in batch:
                sent += len((await report(decode(body))).SerializeToString())
        return sent

    async def run_apart(self, batches: Sequence[Sequence[bytes]], gap_s: float) -> float:
        """:meth:`run` with the process asleep ``gap_s`` before each report, as a server
        waits on its sockets between reports; the CPU seconds spent in the reports alone."""
        spent = 0.0
        report, decode = self.servicer.report, pb.ReportRequest.FromString
        for batch in batches:
            self.now += _INTERVAL_NS
            for body in batch:
                time.sleep(gap_s)
                start = time.thread_time()
                (await report(decode(body))).SerializeToString()
                spent += time.thread_time() - start
        return spent


def cpu_per_key_update(
    clients: int,
    keys: int,
    rounds: int,
    wire: str = "full",
    clock: Callable[[], float] = time.process_time,
    gap_s: float = 0.0,
) -> dict[str, float]:
    """CPU µs per key-update (and bytes per key-update) over ``rounds`` warm rounds; with
    ``gap_s``, each report applied after that long asleep (caches no longer warm from the
    last one, as in a server that is not saturated) and only the reports timed."""
    work = Workload(clients, keys, rounds, wire)

    async def go() -> tuple[float, int]:
        await work.run(work.warm)
        settle_gc()
        if gap_s:
            return await work.run_apart(work.rounds, gap_s), 0
        start = clock()
        sent = await work.run(work.rounds)
        return clock() - start, sent

    seconds, sent = asyncio.run(go())
    return {
        "cpu_us_per_key_update": seconds / work.key_updates * 1e6,
        "response_bytes_per_key_update": sent / work.key_updates,
        "request_bytes_per_key_update": sum(len(b) for batch in work.rounds for b in batch)
        / work.key_updates,
        "key_updates": work.key_updates,
    }


async def _child(clients: int, keys: int, rounds: int, wire: str) -> None:
    work = Workload(clients, keys, max(rounds, 1), wire)
    await work.run(work.warm)
    settle_gc()
    await work.run(work.rounds[:rounds])


def _instructions(clients: int, keys: int, rounds: int, wire: str) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", "bench.report_apply", "--child", "--clients", str(clients)]
    argv += ["--keys", str(keys), "--rounds", str(rounds), "--wire", wire]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=1800, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]!r}")
    return int(found.group(1))


def instructions_per_key_update(clients: int, keys: int, rounds: int, wire: str) -> float:
    """Instructions one key-update costs, start-up and warm-up subtracted."""
    full = _instructions(clients, keys, rounds, wire)
    empty = _instructions(clients, keys, 0, wire)
    return (full - empty) / (clients * keys * rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_apply")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--keys", type=int, default=100, help="keys per report")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--wire", choices=("full", "compact"), default="full")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="sleep before each report (CPU time only)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.clients, args.keys, args.rounds, args.wire))
        return 0
    result: dict[str, float] = cpu_per_key_update(
        args.clients, args.keys, args.rounds, args.wire, gap_s=args.gap_ms / 1e3
    )
    if args.callgrind:
        if shutil.which("valgrind") is None:
            sys.exit("valgrind is not installed: apt-get install valgrind")
        result["instructions_per_key_update"] = instructions_per_key_update(
            args.clients, args.keys, args.rounds, args.wire
        )
    print(json.dumps({k: round(v, 2) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
