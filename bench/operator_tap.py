"""What the operator page's tap costs the report path: the same reports applied by a plain
:class:`~ratekeeper.protocol.report.ReportProcessor` and by the tapped one
(:class:`~ratekeeper.server.operator_reports.ObservedReports`, built with ``--admin-listen``).

The workload is ``bench.report_apply``'s (``--clients`` clients each reporting the same
``--keys`` keys every round, through ``ReportServicer.report`` minus gRPC), under a rule of
``--rate`` hits per second per key: the default (50/s) limits nothing; ``--rate 5`` puts every
key in a rejection period, so the tap tracks its 64 keys and looks up each client's known keys
(its most expensive case). Printed per variant: instructions per key-update counted by valgrind,
``(I(N rounds) - I(0 rounds)) / key-updates``, and the tapped/plain ratio; without valgrind, CPU
µs per key-update (noisy on a shared machine).

    python -m bench.operator_tap                       # instructions; ~2 min quiet, more loaded
    python -m bench.operator_tap --rate 5 --wire compact
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time

import yaml

from bench import callgrind
from bench.report_apply import report_requests
from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportSettings
from ratekeeper.server.app import settle_gc
from ratekeeper.server.operator_history import OperatorTap
from ratekeeper.server.operator_reports import report_processor
from ratekeeper.server.report_servicer import ReportServicer

__all__ = ["main"]

_INTERVAL_NS = 100_000_000
_START_NS = 1_763_700_000 * NS_PER_SECOND


def _config(rate: int) -> str:
    return f"""\
domain: apply
descriptors:
  - key: route
    value: api
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: {rate}}}
"""


async def _run(args: argparse.Namespace, tapped: bool, rounds: int) -> float:
    """Warm up, then apply ``rounds`` of the ``args.rounds`` rounds built (all are built, so
    building cancels out of the instruction counts); CPU seconds of those rounds."""
    policy = PolicyTree.from_mapping(yaml.safe_load(_config(args.rate)))
    now = [_START_NS]
    tap = OperatorTap() if tapped else None
    processor = report_processor(
        StoreGate(MemoryStore()), lambda: policy, ReportSettings(), None, tap
    )
    servicer = ReportServicer(processor, clock=lambda: now[0])
    compact = args.wire == "compact"
    warm = report_requests(args.clients, args.keys, 1, wire="intern" if compact else args.wire)
    warm += report_requests(args.clients, args.keys, 1, first_sequence=2, wire=args.wire)
    built = report_requests(args.clients, args.keys, args.rounds, first_sequence=3, wire=args.wire)
    batches = built[:rounds]

    async def apply(batches: list[list[bytes]]) -> None:
        for batch in batches:
            now[0] += _INTERVAL_NS
            for body in batch:
                (await servicer.report(pb.ReportRequest.FromString(body))).SerializeToString()

    await apply(warm)
    settle_gc()
    start = time.process_time()
    await apply(batches)
    return time.process_time() - start


def _instructions(args: argparse.Namespace, tapped: bool, rounds: int) -> int:
    child = ["--child", "--apply", str(rounds), "--rounds", str(args.rounds)]
    child += ["--clients", str(args.clients), "--keys", str(args.keys), "--rate", str(args.rate)]
    child += ["--wire", args.wire] + (["--tapped"] if tapped else [])
    return callgrind.instructions("bench.operator_tap", child, timeout=1800)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_tap")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--keys", type=int, default=100, help="keys per report")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=50, help="the rule's hits/s per key")
    parser.add_argument("--wire", choices=("full", "compact"), default="full")
    parser.add_argument("--tapped", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--apply", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_run(args, args.tapped, args.apply))
        return 0
    updates = args.clients * args.keys * args.rounds
    result: dict[str, float] = {}
    for tapped in (False, True):
        name = "tapped" if tapped else "plain"
        if shutil.which("valgrind") is None:
            result[f"{name}_cpu_us"] = asyncio.run(_run(args, tapped, args.rounds)) / updates * 1e6
            continue
        full, empty = _instructions(args, tapped, args.rounds), _instructions(args, tapped, 0)
        result[f"{name}_instructions"] = (full - empty) / updates
    values = list(result.values())
    result["tapped_over_plain"] = values[1] / values[0]
    print(
        json.dumps(
            {"wire": args.wire, "rate": args.rate, **{k: round(v, 3) for k, v in result.items()}}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
