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
* **Slice-aligned.** Every counter carries its 64-bit key hash (the wire contract's hash of its
  canonical key bytes, :mod:`ratekeeper.core.keys`); :meth:`Store.export` hands over the
  counters of one hash range ``[low, high)`` and :meth:`Store.import_` takes them in, so a slice
  of the hash space moves between servers with its state. A store whose counters are already
  shared by every server (Redis) has nothing to move and raises :class:`TransferUnsupported`.
* **Cold ranges.** A server that takes a range over without its previous owner's counters (a
  crash, a hand-off not yet arrived) must not hand its keys a fresh burst: after
  :meth:`Store.start_empty` a counter created in the range starts emptied at the given instant
  (a bucket at zero tokens then, a window counted full), until the mark is lifted. It changes
  only counters created later, never those held. Redis raises :class:`TransferUnsupported`
  here too: its counters outlive any one server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ratekeeper.core.keys import Entries, canonical_bytes, key_hash
from ratekeeper.core.limits import Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import RatekeeperError

__all__ = [
    "Counter",
    "CounterSnapshot",
    "Hit",
    "Snapshot",
    "Store",
    "StoreStat",
    "TransferUnsupported",
]


class TransferUnsupported(RatekeeperError, NotImplementedError):
    """The store keeps its counters in state every server already shares (Redis), so a slice
    moves between servers without its state: :meth:`Store.export`, :meth:`Store.import_`,
    :meth:`Store.drop` and :meth:`Store.start_empty` are not supported. The message says why,
    for the operator."""


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter: a key (domain and descriptor entries) under one limit."""

    #: The rate limit domain.
    domain: str
    #: The entries that name the counter (runtime values, or a shared wildcard pattern).
    entries: Entries
    #: The limit counted against; a descriptor with two limits has two counters.
    limit: Limit
    #: The 64-bit key hash of ``(domain, entries)``: which slice (so which server) owns the
    #: counter, and which shard of a memory store holds it.
    key_hash: int = field(init=False, repr=False, compare=False)
    #: The counter as plain values, ``(domain, entries, limit.identity)``: equal exactly when
    #: the counters are, and untracked by CPython's cyclic collector (see the memory store).
    identity: tuple[str, Entries, tuple[int, int, int, int | None, str]] = field(
        init=False, repr=False, compare=False
    )
    # Counters key dicts (the report service's, the demand book's); the generated hash would
    # rehash every field (and every entry) on each lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identity = (self.domain, self.entries, self.limit.identity)
        object.__setattr__(self, "key_hash", key_hash(canonical_bytes(self.domain, self.entries)))
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
    #: The reporting client whose report carries the hits ("" on the RLS path): a bounded store
    #: charges a counter these hits create to it (:mod:`ratekeeper.backends.budgets`).
    client: str = ""
    #: Most tokens of debt a debit may leave on a token bucket, when more than the core's
    #: horizon (:func:`~ratekeeper.core.token_bucket.debt_floor`); 0: the horizon alone.
    debt: int = 0


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """One counter's whole state, portable to another process (plain values only)."""

    counter: Counter
    #: The algorithm's state fields with every instant written as an age: nanoseconds before
    #: the exporter's ``now`` (so exporter and importer share no clock).
    state: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every counter a store held in the hash range ``[low, high)`` when it was exported."""

    low: int
    high: int
    counters: tuple[CounterSnapshot, ...] = ()
    #: The parts of the range that were cold (:meth:`Store.start_empty`) at export, each
    #: ``(low, high, age)`` with the mark's instant as an age in ns before the exporter's
    #: ``now``. :meth:`Store.import_` leaves marks alone: the importer, who knows which of its
    #: own marks only wait for this snapshot, applies these with :meth:`Store.start_empty`.
    cold: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class StoreStat:
    """One count a store reports about itself, exported as one metric."""

    #: The metric's full name (``ratekeeper_store_keys``).
    name: str
    #: One-line description.
    help: str
    #: ``gauge`` for a level, ``counter`` for a running total.
    kind: Literal["gauge", "counter"]
    value: float


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

    async def export(self, low: int, high: int, now: int) -> Snapshot:
        """Every counter whose key hash lies in ``[low, high)``, with its full state.

        Visits only the counters of that range (no scan of the whole store). Leaves them in
        place: the caller drops them once the importer has confirmed.
        """
        ...

    async def import_(self, snapshot: Snapshot, now: int) -> int:
        """Merge ``snapshot`` in; for a counter held on both sides the stricter state wins
        (fewer hits admissible now). Returns how many counters were taken in."""
        ...

    async def drop(self, low: int, high: int) -> int:
        """Forget every counter whose key hash lies in ``[low, high)``; how many were held."""
        ...

    async def start_empty(self, low: int, high: int, since: int | None) -> None:
        """Counters created from now on with their key hash in ``[low, high)`` start emptied at
        ``since`` (ns, the callers' clock), whatever parts of the range were marked before;
        ``since=None`` lifts the mark (new counters there start full again)."""
        ...

    def stats(self) -> Sequence[StoreStat]:
        """The store's own counts, read at scrape time."""
        ...

    def healthy(self) -> bool:
        """Whether the store can currently answer."""
        ...

    async def close(self) -> None:
        """Release connections and tasks."""
        ...
