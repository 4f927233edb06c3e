"""The store interface: where counters live (process memory, Redis).

A store only keeps state; the algorithms live in :mod:`ratekeeper.core` and a store applies them
(in Python for memory, in a Lua script checked against the core for Redis).

Contract for every implementation:

* **Batched.** Each call takes every counter one request (or one report) touches, so a remote
  store can answer in one round trip; results are aligned with the input.
* **Time is a parameter.** ``now`` is wall-clock nanoseconds since the Unix epoch (fixed windows
  align to the epoch and must line up across processes sharing a store).
* **Single writer.** Methods are called from one asyncio event loop; they are not thread-safe.
* **Errors.** A store that cannot answer raises :class:`~ratekeeper.errors.BackendError` within
  its configured timeout; it never blocks longer.
* **Bounded.** Memory held is bounded whatever keys callers send; evicting a counter must never
  hand quota back to a key that is over its limit or in debt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import Limit
from ratekeeper.core.outcome import Outcome

__all__ = ["Counter", "Hit", "Store"]


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter: a key (domain and descriptor entries) under one limit."""

    #: The rate limit domain.
    domain: str
    #: The entries that name the counter (runtime values, or a shared wildcard pattern).
    entries: Entries
    #: The limit counted against; a descriptor with two limits has two counters.
    limit: Limit
    #: ``hash(entries)``, kept: it picks the memory store's shard on every hit.
    entries_hash: int = field(init=False, repr=False, compare=False)
    #: The counter as plain values, ``(domain, entries, limit.identity)``: equal exactly when
    #: the counters are, and untracked by CPython's cyclic collector (see the memory store).
    identity: tuple[str, Entries, tuple[int, int, int, int | None, str]] = field(
        init=False, repr=False, compare=False
    )
    # Counters key dicts (the report service's, the demand book's); the generated hash would
    # rehash every field (and every entry) on each lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries_hash = hash(self.entries)
        identity = (self.domain, self.entries, self.limit.identity)
        object.__setattr__(self, "entries_hash", entries_hash)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "_hash", hash(identity))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Hit:
    """``hits`` against one counter."""

    counter: Counter
    #: How many hits; 0 checks without counting.
    hits: int


class Store(Protocol):
    """Keeps counters; see the module docstring for the contract."""

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Decide and count each hit, as the synchronous APIs (Envoy RLS, /json) need."""
        ...

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        """Count hits admitted elsewhere (batch reports), past the limit if need be.

        Returns each counter's state after the debit (``allowed`` is whether one more hit
        would be admitted now).
        """
        ...

    def healthy(self) -> bool:
        """Whether the store can currently answer."""
        ...

    async def close(self) -> None:
        """Release connections and tasks."""
        ...
