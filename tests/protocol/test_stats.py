"""MemoryStats: the in-memory StatsSink, capped like the Prometheus one."""

from __future__ import annotations

from ratekeeper.protocol.stats import OVERFLOW_LABEL, RULE_COUNTS, Event, MemoryStats


def test_rule_counts_are_one_object_per_label_set_and_capped() -> None:
    stats = MemoryStats(max_keys=2)
    first = stats.rule("d", "a")
    assert stats.rule("d", "a") is first
    stats.rule("d", "b")
    assert stats.rule("d", "c") is stats.rule("d", "zzz")  # past the cap: one overflow record
    assert (OVERFLOW_LABEL, OVERFLOW_LABEL) in stats.rules.records
    assert RULE_COUNTS == (
        "total_hits",
        "over_limit",
        "near_limit",
        "within_limit",
        "shadow_mode",
    )


def test_events_invalid_calls_and_timings_are_counted() -> None:
    stats = MemoryStats()
    stats.count(Event.STORE_ERROR)
    stats.invalid("report")
    stats.timer("report").observe(0.25)
    stats.timer("report").observe(0.5)
    stats.unknown_domain("x").count += 2
    assert stats.events[Event.STORE_ERROR] == 1
    assert stats.invalid_calls["report"] == 1
    assert (stats.timings["report"].calls, stats.timings["report"].seconds) == (2, 0.75)
    assert stats.unknown_domains.get("x").count == 2
