"""What the memory store reports about itself: its counts, typed, and as metrics."""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.backends.budgets import StorePressure
from ratekeeper.backends.store import StoreStat

__all__ = ["MemoryStoreStats", "store_stats"]


@dataclass(frozen=True, slots=True)
class MemoryStoreStats:
    """Counts for metrics; read at scrape time."""

    #: Counters held now.
    keys: int
    #: Partly used counters evicted to make room for new keys.
    evictions: int
    #: Full counters dropped (idle expiry, or to make room).
    expirations: int
    #: New keys refused because every counter the hand saw was exhausted.
    refused: int


def store_stats(c: MemoryStoreStats, pressure: StorePressure) -> tuple[StoreStat, ...]:
    """One :class:`StoreStat` per count, as ``/metrics`` exports them."""
    return (
        StoreStat("ratekeeper_store_keys", "Counters held.", "gauge", c.keys),
        StoreStat(
            "ratekeeper_store_evictions",
            "Partly used counters evicted to make room.",
            "counter",
            c.evictions,
        ),
        StoreStat(
            "ratekeeper_store_expirations", "Full counters dropped.", "counter", c.expirations
        ),
        StoreStat(
            "ratekeeper_store_refused_keys",
            "New keys refused at the key cap (every counter exhausted).",
            "counter",
            c.refused,
        ),
        StoreStat(
            "ratekeeper_store_pressure",
            "Counters held over the most the store holds (1: full).",
            "gauge",
            pressure.fill,
        ),
        StoreStat(
            "ratekeeper_store_refused_over_budget",
            "New keys refused because their domain or reporting client was at its budget.",
            "counter",
            pressure.refused_over_budget,
        ),
        StoreStat(
            "ratekeeper_store_parties_at_budget",
            "Domains and reporting clients at their budget now (their new keys are refused).",
            "gauge",
            len(pressure.at_budget),
        ),
    )
