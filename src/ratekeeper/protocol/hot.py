"""Keys in a rejection period, told to every client: the hot-key broadcast.

The server answers a key only to the clients that report it, so a client that sees a key rarely
(a sparse share of a large fleet) admits it at its full local pace while the others are told to
reject: the fleet overshoots and the debt is repaid by the clients that report (issue 11,
bounds 2 and 4). :class:`HotKeys` remembers the keys the server last answered with a rejection
period and hands them to every answer, so each client rejects them with its next answer,
whether or not it reported them.

Bounded: at most ``capacity`` keys, the least recently rejected dropped first, and expired
periods are dropped as they are met. Keys are named by the client's own hash of their canonical
bytes (:func:`~ratekeeper.core.keys.key_hash`), so a client matches them with one dict lookup.
Event loop only: single writer.
"""

from __future__ import annotations

from collections import OrderedDict

from ratekeeper.core.keys import Entries, canonical_bytes, key_hash

__all__ = ["HotKeys"]


class HotKeys:
    """Until when each recently rejected key is rejected (server clock); see the module
    docstring."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._until: OrderedDict[int, int] = OrderedDict()

    def note(self, domain: str, entries: Entries, reject_for_ns: int, now: int) -> None:
        """Record a key answered with a rejection period of ``reject_for_ns`` from ``now``.

        A key answered without one is not looked up (that would hash every reported key): its
        period, which ends when its debt is repaid, expires on its own.
        """
        if self._capacity <= 0 or not reject_for_ns:
            return
        hashed = key_hash(canonical_bytes(domain, entries))
        self._until[hashed] = now + reject_for_ns
        self._until.move_to_end(hashed)
        if len(self._until) > self._capacity:
            self._until.popitem(last=False)

    def current(self, now: int) -> tuple[tuple[int, int], ...]:
        """Every key still rejected at ``now``: (key hash, ns left), expired ones dropped."""
        if not self._until:
            return ()
        expired = [h for h, until in self._until.items() if until <= now]
        for hashed in expired:
            del self._until[hashed]
        return tuple((h, until - now) for h, until in self._until.items())
