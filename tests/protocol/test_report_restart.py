"""A lone in-memory server that finds it was restarted starts its new counters empty."""

from __future__ import annotations

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.core.limits import NS_PER_SECOND, parse_limit
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_values import KeyCounts, Report

INTERVAL = 100_000_000
START = 1_700_000_000 * NS_PER_SECOND
LIMIT = (parse_limit("50/s"),)
DEFAULTS = ReportSettings()


def _report(client: str, sequence: int, admitted: int, name: str = "k") -> Report:
    return Report(
        client, (KeyCounts("api", (("user", name),), admitted, 0, LIMIT),), INTERVAL, sequence
    )


async def _first_answer(sequence: int, settings: ReportSettings = DEFAULTS) -> float:
    processor = ReportProcessor(StoreGate(MemoryStore()), lambda: None, settings)
    answer = await processor.process(_report("c1", sequence, 10), START)
    (instruction,) = answer.instructions
    return instruction.reject_for_ns


async def test_a_first_start_hands_out_the_burst() -> None:
    assert await _first_answer(1) == 0  # 10 of 50 tokens spent


async def test_a_client_numbered_past_one_finds_the_restart_and_counters_start_empty() -> None:
    # the bucket starts at 0 tokens: 10 hits are 10 tokens of debt, repaid at 50/s
    assert await _first_answer(57) > 150_000_000


async def test_the_watch_can_be_turned_off() -> None:
    assert await _first_answer(57, ReportSettings(restart_cold_ns=0)) == 0


async def test_keys_first_reported_after_the_window_start_full_again() -> None:
    processor = ReportProcessor(StoreGate(MemoryStore()), lambda: None, ReportSettings())
    await processor.process(_report("c1", 57, 0), START)
    later = START + 3 * NS_PER_SECOND
    answer = await processor.process(_report("c2", 9, 10, "fresh"), later)
    assert answer.instructions[0].reject_for_ns == 0


async def test_a_cluster_member_does_not_watch() -> None:
    from ratekeeper.protocol.ownership import Ownership

    class Half(Ownership):  # not the whole space: hand-off's cold ranges are the member's own
        def owns(self, key_hash: int) -> bool:
            return True

    processor = ReportProcessor(StoreGate(MemoryStore(), Half()), lambda: None, ReportSettings())
    answer = await processor.process(_report("c1", 57, 10), START)
    assert answer.instructions[0].reject_for_ns == 0
