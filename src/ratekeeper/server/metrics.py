"""Prometheus metrics of one server process, in a registry of its own: the server's StatsSink.

:class:`Metrics` is the :class:`~ratekeeper.protocol.stats.StatsSink` the server's deciders and
servicers count through. Hot-path counts (per-rule hits) are plain integer fields added to on
the event loop; Prometheus families are built from them only when ``/metrics`` is scraped.
Label values that clients choose (``detailed_metric`` stats keys, override paths, domains) are
capped: past ``max_stats_keys`` distinct label sets per family, new ones are counted under
:data:`~ratekeeper.protocol.stats.OVERFLOW_LABEL`.

Thread safety: record from the event loop only; scrapes run on the same loop.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ratekeeper.backends.store import Store, StoreStat
from ratekeeper.protocol.stats import RULE_COUNTS, CappedLabels, Event, RuleCounts, Tally

__all__ = [
    "DomainNotFound",
    "GcPauses",
    "Latency",
    "LatencySeries",
    "Metrics",
    "RuleStats",
]

_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
)  # fmt: skip


class LatencySeries:
    """One call's latency histogram: a bisect and two additions per observation.

    prometheus_client's Histogram takes a lock and walks its buckets in Python on every call, a
    visible part of a ShouldRateLimit (docs/benchmarks.md); one event loop writes here, so no
    lock is needed.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        #: Upper bounds (``le``) of the finite buckets, ascending.
        self.bounds = bounds
        #: Observations per bucket (not cumulative); the last is the ``+Inf`` overflow.
        self.counts = [0] * (len(bounds) + 1)
        #: Sum of observed seconds.
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class Latency(Collector):
    """Latency histograms under one metric name, labelled by one server-chosen label."""

    def __init__(self, name: str, doc: str, label: str, bounds: tuple[float, ...]) -> None:
        self._name, self._doc, self._label = name, doc, label
        self._bounds = bounds
        self._series: dict[str, LatencySeries] = {}

    def labels(self, value: str) -> LatencySeries:
        """The series of ``value`` (fixed by the server, never by clients: cardinality is
        bounded)."""
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = LatencySeries(self._bounds)
        return series

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._doc, labels=(self._label,))
        for value, series in self._series.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*series.bounds, float("inf")), series.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric((value,), buckets, series.total)
        yield family


class GcPauses:
    """Times each cyclic garbage collection into ``ratekeeper_gc_pause_seconds`` by generation.

    A full collection walks every tracked object (cached plans among them), so its pause grows
    with what the server holds (docs/operations.md); this is where a latency spike that no call
    explains shows up. Collections are process-wide: :meth:`watch` hooks ``gc.callbacks``
    (``ratekeeper serve`` does), :meth:`unwatch` unhooks.
    """

    def __init__(self, histograms: Latency) -> None:
        # One series per generation from the start, so every generation is exported.
        self._series = tuple(histograms.labels(str(generation)) for generation in range(3))
        self._started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._series[info["generation"]].observe(time.perf_counter() - self._started)

    def watch(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


class RuleStats(Collector):
    """Per-rule hit counts (:class:`~ratekeeper.protocol.stats.RuleCounts`) with a bounded
    number of label sets; one counter family per field."""

    def __init__(self, max_keys: int) -> None:
        self.counts: CappedLabels[RuleCounts] = CappedLabels(max_keys, RuleCounts)

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name in RULE_COUNTS:
            family = CounterMetricFamily(
                f"ratekeeper_rule_{name}",
                f"Hits per rule: {name} (envoyproxy/ratelimit's per-rule stat).",
                labels=("domain", "key"),
            )
            for labels, counts in self.counts.records.items():
                family.add_metric(labels, getattr(counts, name))
            yield family


class DomainNotFound(Collector):
    """Descriptors sent for a domain no config defines, by domain (bounded like rule stats)."""

    def __init__(self, max_keys: int) -> None:
        self.counts: CappedLabels[Tally] = CappedLabels(max_keys, Tally)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ratekeeper_domain_not_found",
            "Descriptors whose domain no config defines (answered OK), by domain.",
            labels=("domain",),
        )
        for labels, tally in self.counts.records.items():
            family.add_metric(labels, tally.count)
        yield family


class _StoreCollector(Collector):
    """Reads a store's own counts (:meth:`Store.stats <ratekeeper.backends.store.Store.stats>`)
    at scrape time."""

    def __init__(self, source: Callable[[], Sequence[StoreStat]]) -> None:
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for stat in self._source():
            family = GaugeMetricFamily if stat.kind == "gauge" else CounterMetricFamily
            yield family(stat.name, stat.help, value=stat.value)


class _AssignmentCollector(Collector):
    """The held assignment's generation at scrape time: its number, labelled by incarnation (a
    new assigner incarnation replaces the series)."""

    def __init__(self, held: Callable[[], tuple[int, int] | None]) -> None:
        self._held = held

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ratekeeper_assignment_generation",
            "Generation number of the assignment this member holds, by assigner incarnation.",
            labels=["incarnation"],
        )
        generation = self._held()
        if generation is not None:
            family.add_metric([str(generation[0])], generation[1])
        yield family


#: Each event's help text (its metric is ``ratekeeper_<event value>``).
_EVENT_HELP: dict[Event, str] = {
    Event.CONFIG_LOAD_SUCCESS: "Config loads that succeeded.",
    Event.CONFIG_LOAD_ERROR: "Config loads that failed (old config kept).",
    Event.STORE_ERROR: "Calls whose store failed (answered per FAIL_CLOSED).",
    Event.SERVICE_ERROR: "Calls that failed inside the server.",
    Event.GLOBAL_SHADOW_MODE: "Requests over their limit answered OK by SHADOW_MODE (once each).",
    Event.REPORT_COUNT_CLAMPED: "Report keys whose counts were clamped to the policy's bound.",
    Event.REPORT_KEY_REFUSED: "Report keys refused alone for out-of-range counts.",
    Event.REPORT_SEQUENCE_REFUSED: "Reports whose number jumped past the client's window.",
    Event.FORWARD_ERROR: "Forwarded RLS calls their owner did not answer (per FAIL_CLOSED).",
    Event.MISDIRECTED_KEY: "Counters applied by a member that does not own their slice.",
}


class Metrics:
    """Every metric the server exports, and the text ``/metrics`` serves; a
    :class:`~ratekeeper.protocol.stats.StatsSink`."""

    def __init__(
        self, max_stats_keys: int, *, max_stats_domains: int = 100, max_label_chars: int = 256
    ) -> None:
        """At most ``max_stats_keys`` per-rule label sets and ``max_stats_domains`` per-domain
        series (never more than ``max_stats_keys``; past either, one overflow row); label values
        cut to ``max_label_chars``."""
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self._label_chars = max_label_chars
        self._rules = RuleStats(max_stats_keys)
        reg.register(self._rules)
        self._domain_not_found = DomainNotFound(min(max_stats_keys, max_stats_domains))
        reg.register(self._domain_not_found)
        self._latency = Latency(
            "ratekeeper_call_seconds",
            "Time to answer one call, by call (ShouldRateLimit, json, report).",
            "call",
            _LATENCY_BUCKETS,
        )
        reg.register(self._latency)
        pauses = Latency(
            "ratekeeper_gc_pause_seconds",
            "Time the process stood still in a cyclic garbage collection, by generation.",
            "generation",
            _LATENCY_BUCKETS,
        )
        reg.register(pauses)
        self.gc_pauses = GcPauses(pauses)
        ProcessCollector(registry=reg)  # resident memory, CPU seconds, open files
        self._events = {
            event: Counter(f"ratekeeper_{event.value}", help, registry=reg)
            for event, help in _EVENT_HELP.items()
        }
        self._invalid = Counter(
            "ratekeeper_invalid_requests", "Calls refused as malformed, by call.", ["call"],
            registry=reg,
        )  # fmt: skip

    def rule(self, domain: str, key: str) -> RuleCounts:
        cut = self._label_chars
        return self._rules.counts.get(domain[:cut], key[:cut])

    def unknown_domain(self, domain: str) -> Tally:
        return self._domain_not_found.counts.get(domain[: self._label_chars])

    def rule_counts(self) -> Mapping[tuple[str, ...], RuleCounts]:
        """Every rule's counts by ``(domain, stats key)``, as counted so far (read-only)."""
        return self._rules.counts.records

    def count(self, event: Event) -> None:
        self._events[event].inc()

    def invalid(self, call: str) -> None:
        self._invalid.labels(call).inc()

    def timer(self, call: str) -> LatencySeries:
        return self._latency.labels(call)

    def watch_store(self, store: Store) -> None:
        """Export the store's own counts."""
        self.registry.register(_StoreCollector(store.stats))

    def watch_assignment(self, held: Callable[[], tuple[int, int] | None]) -> None:
        """Export the generation of the assignment this member holds (``held``: incarnation
        and number, ``None`` before the first), so operators see every member converge."""
        self.registry.register(_AssignmentCollector(held))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
