"""A cluster member's steady reports take the fast path, and its gate notes what the general
path's store calls would: every key charged to its slice with its hits, those not owned
counted as misdirected, the answers the same."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.protocol.report_values import KeyCounts, Report
from ratekeeper.protocol.stats import Event, MemoryStats

from .test_report_fast import MS, POLICIES, SETTINGS, START


class Slices:
    """Owns the even hashes; notes what it is charged (a member's slice view, in miniature)."""

    def __init__(self) -> None:
        self.charged: Counter[int] = Counter()
        self.asked: Counter[int] = Counter()

    def owns(self, key_hash: int) -> bool:
        return key_hash % 2 == 0

    def charge(self, key_hash: int, hits: int) -> bool:
        self.charged[key_hash] += hits
        self.asked[key_hash] += 1
        return self.owns(key_hash)


class Unmetered:
    """The same ownership without metering: its gate sends every report the general way."""

    def __init__(self) -> None:
        self.asked: Counter[int] = Counter()

    def owns(self, key_hash: int) -> bool:
        self.asked[key_hash] += 1
        return key_hash % 2 == 0


def _reports() -> list[Report]:
    names = [KeyCounts("api", (("user", f"u{i}"),), 1, 0, (), i + 1) for i in range(8)]
    first = Report("c", tuple(names), 100 * MS, 1)
    ids = tuple(range(1, 9))
    steady = [
        Report("c", (), 100 * MS, n, ids, tuple((n + i) % 3 for i in ids), (0,) * 8, True)
        for n in range(2, 8)
    ]
    return [first, *steady]


async def _run(ownership: Slices | Unmetered) -> tuple[list[object], MemoryStats, int]:
    """The answers, the stats, and how many reports the fast path applied."""
    stats = MemoryStats()
    gate = StoreGate(MemoryStore(max_keys=64, shards=4), ownership, stats)
    processor = ReportProcessor(gate, lambda: POLICIES[0], SETTINGS, stats)
    fast = processor._fast
    applied = 0
    if fast is not None:
        apply = fast.apply

        async def counted(*args: Any) -> Any:
            nonlocal applied
            applied += 1
            return await apply(*args)

        fast.apply = counted  # type: ignore[method-assign]
    answers: list[object] = []
    for n, report in enumerate(_reports()):
        answers.append(await processor.process(report, START + n * 100 * MS))
    return answers, stats, applied


def test_a_members_steady_reports_are_charged_as_the_general_path_charges() -> None:
    metered, unmetered = Slices(), Unmetered()
    fast_answers, fast_stats, fast = asyncio.run(_run(metered))
    general_answers, general_stats, general = asyncio.run(_run(unmetered))
    assert (fast, general) == (6, 0)  # every steady report, fast; none without metering
    assert fast_answers == general_answers
    assert metered.asked == unmetered.asked  # every key, once per report
    misdirected = fast_stats.events.get(Event.MISDIRECTED_KEY, 0)
    assert misdirected == general_stats.events.get(Event.MISDIRECTED_KEY, 0)
    assert misdirected > 0
    # the hits: what the reports counted (1 a key on the first, then (n + id) % 3)
    assert sum(metered.charged.values()) == 8 + sum(
        (n + i) % 3 for n in range(2, 8) for i in range(1, 9)
    )
