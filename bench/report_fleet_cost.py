"""What naming the fleet and slot costs the server per report: ``ReportProcessor.process``
against the body it wraps (``_answer``), on probes (empty reports: most reports, and the ones
it weighs on most), in one process, CPU time.

    PYTHONPATH=src:. python bench/report_fleet_cost.py [--clients 40] [--rounds 3000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_values import Report, ReportAnswer
from ratekeeper.testing.model.runner import run_sync

Process = Callable[[Report, int], Coroutine[Any, Any, ReportAnswer]]


def per_report_us(process: Process, reports: list[Report], rounds: int) -> float:
    now = 10**18
    start = time.process_time()
    for _ in range(rounds):
        now += 100_000_000
        for report in reports:
            run_sync(process(report, now))
    return (time.process_time() - start) / (rounds * len(reports)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    processor = ReportProcessor(StoreGate(MemoryStore()), lambda: None, ReportSettings())
    reports = [Report(f"c{i}", (), 100_000_000, 0) for i in range(args.clients)]
    for _ in range(3):
        body = per_report_us(processor._answer, reports, args.rounds)
        wrapped = per_report_us(processor.process, reports, args.rounds)
        extra = wrapped - body
        print(f"probe: body {body:.2f} us, with fleet and slot {wrapped:.2f} us (+{extra:.2f})")


if __name__ == "__main__":
    main()
