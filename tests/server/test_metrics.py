"""The Prometheus stats sink renders its counts as Prometheus expects."""

from __future__ import annotations

import gc

from ratekeeper.protocol.stats import Event
from ratekeeper.server.metrics import Metrics


def _lines(metrics: Metrics, name: str) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(name)]


def test_latency_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    metrics = Metrics(max_stats_keys=10)
    series = metrics.timer("ShouldRateLimit")
    for seconds in (0.0001, 0.0001, 0.0002, 0.3, 7.0):  # 0.0001 is a bound: le is inclusive
        series.observe(seconds)
    lines = _lines(metrics, "ratekeeper_call_seconds")
    assert 'ratekeeper_call_seconds_bucket{call="ShouldRateLimit",le="5e-05"} 0.0' in lines
    assert 'ratekeeper_call_seconds_bucket{call="ShouldRateLimit",le="0.0001"} 2.0' in lines
    assert 'ratekeeper_call_seconds_bucket{call="ShouldRateLimit",le="0.00025"} 3.0' in lines
    assert 'ratekeeper_call_seconds_bucket{call="ShouldRateLimit",le="1.0"} 4.0' in lines
    assert 'ratekeeper_call_seconds_bucket{call="ShouldRateLimit",le="+Inf"} 5.0' in lines
    assert 'ratekeeper_call_seconds_count{call="ShouldRateLimit"} 5.0' in lines
    (total,) = [line for line in lines if line.startswith("ratekeeper_call_seconds_sum")]
    assert abs(float(total.split()[-1]) - 7.3004) < 1e-9


def test_each_call_has_its_own_series() -> None:
    metrics = Metrics(max_stats_keys=10)
    metrics.timer("json").observe(0.01)
    assert metrics.timer("json") is metrics.timer("json")
    assert 'ratekeeper_call_seconds_count{call="json"} 1.0' in _lines(metrics, "ratekeeper_call")
    assert not [line for line in _lines(metrics, "ratekeeper_call") if "report" in line]


def test_unknown_domains_are_counted_under_a_capped_label_set() -> None:
    metrics = Metrics(max_stats_keys=2)
    for domain in ("a", "b", "c", "d"):
        metrics.unknown_domain(domain).count += 1
    assert _lines(metrics, "ratekeeper_domain_not_found_total") == [
        'ratekeeper_domain_not_found_total{domain="a"} 1.0',
        'ratekeeper_domain_not_found_total{domain="b"} 1.0',
        'ratekeeper_domain_not_found_total{domain="_overflow_"} 2.0',
    ]


def test_gc_pauses_are_timed_by_generation_while_watched() -> None:
    metrics = Metrics(max_stats_keys=10)
    metrics.gc_pauses.watch()
    metrics.gc_pauses.watch()  # idempotent: one hook, each collection timed once
    try:
        gc.collect(2)
    finally:
        metrics.gc_pauses.unwatch()
    gc.collect(2)  # unhooked: not counted
    lines = _lines(metrics, "ratekeeper_gc_pause_seconds_count")
    assert 'ratekeeper_gc_pause_seconds_count{generation="2"} 1.0' in lines
    assert 'ratekeeper_gc_pause_seconds_count{generation="0"} 0.0' in lines
    assert metrics.gc_pauses._on_gc not in gc.callbacks


def test_rule_counts_render_one_family_per_field_under_a_capped_label_set() -> None:
    metrics = Metrics(max_stats_keys=1)
    counts = metrics.rule("d", "d.k")
    assert metrics.rule("d", "d.k") is counts
    counts.total_hits += 3
    counts.over_limit += 1
    metrics.rule("d", "d.other").total_hits += 2  # past the cap: the overflow labels
    lines = _lines(metrics, "ratekeeper_rule_")
    assert 'ratekeeper_rule_total_hits_total{domain="d",key="d.k"} 3.0' in lines
    assert 'ratekeeper_rule_over_limit_total{domain="d",key="d.k"} 1.0' in lines
    assert 'ratekeeper_rule_shadow_mode_total{domain="d",key="d.k"} 0.0' in lines
    overflow = 'ratekeeper_rule_total_hits_total{domain="_overflow_",key="_overflow_"} 2.0'
    assert overflow in lines


def test_events_and_invalid_calls_are_counters() -> None:
    metrics = Metrics(max_stats_keys=10)
    metrics.count(Event.STORE_ERROR)
    metrics.count(Event.STORE_ERROR)
    metrics.invalid("report")
    assert _lines(metrics, "ratekeeper_store_errors_total") == ["ratekeeper_store_errors_total 2.0"]
    lines = _lines(metrics, "ratekeeper_invalid_requests_total")
    assert lines == ['ratekeeper_invalid_requests_total{call="report"} 1.0']
    for event in Event:
        assert _lines(metrics, f"ratekeeper_{event.value}_total")


def test_the_held_assignment_generation_is_read_at_scrape_time() -> None:
    metrics = Metrics(max_stats_keys=10)
    held: list[tuple[int, int] | None] = [None]
    metrics.watch_assignment(lambda: held[0])
    assert _lines(metrics, "ratekeeper_assignment_generation{") == []  # none held yet
    held[0] = (17, 3)
    lines = _lines(metrics, "ratekeeper_assignment_generation{")
    assert lines == ['ratekeeper_assignment_generation{incarnation="17"} 3.0']
    held[0] = (18, 1)  # a new assigner incarnation replaces the series
    lines = _lines(metrics, "ratekeeper_assignment_generation{")
    assert lines == ['ratekeeper_assignment_generation{incarnation="18"} 1.0']
