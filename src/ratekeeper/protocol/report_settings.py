"""Bounds on what a batch report may carry and how long its answers hold (``ReportSettings``).

One value object shared by the report logic (:mod:`ratekeeper.protocol.report`), the server's
settings and the model; documented field by field.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND

__all__ = ["ReportSettings"]

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Bounds on what a report may carry, and how long answers hold."""

    #: Most keys one report may carry (a client with more sends the rest next cycle).
    max_keys: int = 10_000
    #: Most descriptor entries per key (Envoy's descriptors are short).
    max_entries: int = 16
    #: Longest domain, entry key or entry value, in characters.
    max_text: int = 256
    #: Longest client id.
    max_client_id: int = 128
    #: Most inline limits per key.
    max_limits: int = 4
    #: Report intervals are clamped to this range before use (ns).
    min_interval_ns: int = 10 * _MS
    max_interval_ns: int = 10 * NS_PER_SECOND
    #: An instruction holds for this many of the client's report intervals.
    valid_intervals: int = 3
    #: A client's demand counts for this long after its report (a few intervals).
    demand_ttl_ns: int = 500 * _MS
    #: Most clients remembered per counter, and (counter, client) entries in all.
    max_clients_per_counter: int = 256
    max_demand_entries: int = 100_000
    #: A counter's unspent tokens are handed out over this horizon.
    surplus_horizon_ns: int = NS_PER_SECOND
    #: Most clients whose last report number is remembered (for resent reports).
    max_sequenced_clients: int = 100_000
    #: Largest admitted or rejected count a key may carry; a key beyond it is refused alone.
    max_count: int = 2**53 - 1
    #: Counts above this many times what a counter's limit admits in ``max_interval_ns`` (plus
    #: its burst) are clamped to that bound.
    count_bound_intervals: int = 10
    #: Most report numbers a client may skip (plus one per ``min_interval_ns`` elapsed since its
    #: last report); a bigger jump is refused.
    sequence_window: int = 1024
    #: Most keys in a rejection period sent with every answer (:mod:`ratekeeper.protocol.hot`).
    max_hot_keys: int = 256
    #: Keys resolved, debited or answered between two pauses of a large report (the servicer's
    #: pause yields to the event loop once its time budget is spent: ``protocol.chunked``).
    chunk_keys: int = 32
    #: How long after its first report a lone in-memory server that finds it was restarted
    #: (a client's first report here numbered past 1) starts new counters empty as of that
    #: report, and how long it looks (:mod:`ratekeeper.core.restart_watch`); 0: never.
    restart_cold_ns: int = 2 * NS_PER_SECOND
    #: Most keys interned (``KeyReport.key_id``), all clients together; the least recently
    #: reporting clients are forgotten first (:mod:`ratekeeper.protocol.report_interned`).
    max_interned_keys: int = 1_000_000
