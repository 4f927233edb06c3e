"""The server's own latency histogram renders as Prometheus expects."""

from __future__ import annotations

import gc

from ratekeeper.server.metrics import Metrics


def _lines(metrics: Metrics, name: str) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(name)]


def test_latency_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    metrics = Metrics(max_stats_keys=10)
    series = metrics.latency.labels("ShouldRateLimit")
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
    metrics.latency.labels("json").observe(0.01)
    assert metrics.latency.labels("json") is metrics.latency.labels("json")
    assert 'ratekeeper_call_seconds_count{call="json"} 1.0' in _lines(metrics, "ratekeeper_call")
    assert not [line for line in _lines(metrics, "ratekeeper_call") if "report" in line]


def test_unknown_domains_are_counted_under_a_capped_label_set() -> None:
    metrics = Metrics(max_stats_keys=2)
    for domain in ("a", "b", "c", "d"):
        metrics.domain_not_found.row(domain)[0] += 1
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
