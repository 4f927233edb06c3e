"""A Limiter's stats and health as Prometheus metrics, read at scrape time.

Only imported when the user calls ``Limiter.register_metrics``, so ``prometheus_client`` stays an
optional import for the client. One collector per limiter, labelled by its ``client_id``:

* ``ratekeeper_client_reports_total{server, result="answered"|"failed"}``;
* ``ratekeeper_client_server_up{server}``: 1 while the server answers (0: failing open);
* ``ratekeeper_client_ready``: 1 when the assignment is known and every server of it answers;
* ``ratekeeper_client_owners``, ``ratekeeper_client_assignment_generation``: servers owning a
  slice of the assignment routed by, and its generation number;
* ``ratekeeper_client_rerouted_total``: hits re-sent to a new owner after theirs left;
* ``ratekeeper_client_keys_tracked``, ``ratekeeper_client_instructions_in_force``;
* ``ratekeeper_client_report_deadline_seconds``: the longest report deadline of any server
  (above the configured timeout while a round trip is longer: ``client.deadline``);
* ``ratekeeper_client_admitted_failing_open_total``: hits decided only locally;
* ``ratekeeper_client_untracked_total``, ``ratekeeper_client_pruned_total``,
  ``ratekeeper_client_cycles_total``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ratekeeper.client.machine import LimiterMachine

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["register", "unregister"]

_collectors: dict[tuple[int, int], object] = {}


def register(machine: LimiterMachine, registry: CollectorRegistry | None) -> CollectorRegistry:
    """Register ``machine``'s collector on ``registry`` (default: the global one); returns it."""
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:  # pragma: no cover - prometheus_client is installed in tests
        raise ImportError("Limiter.register_metrics needs prometheus_client installed") from exc
    target = REGISTRY if registry is None else registry
    collector = _Collector(machine)
    target.register(collector)
    _collectors[(id(machine), id(target))] = collector
    return target


def unregister(machine: LimiterMachine, registry: CollectorRegistry) -> None:
    """Remove ``machine``'s collector from ``registry`` (no error if it is not there)."""
    collector = _collectors.pop((id(machine), id(registry)), None)
    if collector is not None:
        registry.unregister(collector)  # type: ignore[arg-type]


class _Collector:
    """Builds the metric families from the machine's plain attributes at each scrape."""

    def __init__(self, machine: LimiterMachine) -> None:
        self._machine = machine

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families are built per scrape

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        machine = self._machine
        stats, client = machine.stats, machine.client_id
        prefix = "ratekeeper_client_"
        reports = CounterMetricFamily(
            prefix + "reports",
            "Reports sent, by server and result",
            labels=["client", "server", "result"],
        )
        up = GaugeMetricFamily(
            prefix + "server_up",
            "1 while the server answers, 0 while failing open",
            labels=["client", "server"],
        )
        for address, health in sorted(machine.health.servers.items()):
            reports.add_metric([client, address, "answered"], health.answered)
            reports.add_metric([client, address, "failed"], health.failed)
            up.add_metric([client, address], 1.0 if health.ok else 0.0)
        yield reports
        yield up
        gauges = {
            "ready": (
                "1 when the assignment is known and its servers answer",
                float(machine.ready),
            ),
            "owners": ("Servers owning a slice of the assignment", len(machine.assignment.servers)),
            "assignment_generation": (
                "Generation number of the assignment routed by",
                machine.assignment.generation.number,
            ),
            "keys_tracked": ("Keys tracked", float(len(machine.states))),
            "instructions_in_force": (
                "Keys with a server instruction in force",
                stats.instructions,
            ),
            "report_deadline_seconds": (
                "Longest report deadline of any server",
                stats.report_deadline,
            ),
        }
        for name, (doc, value) in gauges.items():
            gauge = GaugeMetricFamily(prefix + name, doc, labels=["client"])
            gauge.add_metric([client], value)
            yield gauge
        counters = {
            "admitted_failing_open": (
                "Hits admitted while their server failed",
                stats.admitted_failing_open,
            ),
            "untracked": ("Keys decided past max_keys, untracked", stats.untracked),
            "pruned": ("Idle keys dropped", stats.pruned),
            "cycles": ("Report cycles run", stats.cycles),
            "rerouted": ("Hits re-sent to a new owner after theirs left", stats.rerouted),
        }
        for name, (doc, value) in counters.items():
            counter = CounterMetricFamily(prefix + name, doc, labels=["client"])
            counter.add_metric([client], value)
            yield counter
