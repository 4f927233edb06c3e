"""bench.operator_tap runs both variants (plain and tapped) on a tiny workload."""

from __future__ import annotations

import argparse

from bench.operator_tap import _run


async def test_both_variants_apply_the_reports() -> None:
    for wire, rate in (("full", 50), ("compact", 5)):
        args = argparse.Namespace(clients=2, keys=5, rounds=2, rate=rate, wire=wire)
        for tapped in (False, True):
            assert await _run(args, tapped, 2) >= 0.0
