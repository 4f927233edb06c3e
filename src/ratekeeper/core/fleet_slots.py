"""The fleet a server hears from, and each client's slot in it: pure, ``now`` passed in.

A client that deals itself a share of a key nobody has been told about yet
(:mod:`ratekeeper.core.dealt`) needs two numbers from its server: how many clients share the
key's budget (the fleet, ``N``) and which share is its own (its slot, ``0 <= slot < N``). Every
client reports to every server each cycle (an empty report if it counted nothing), so the clients
a server heard from within their last few intervals are the fleet.

Slots are dense and stable: a new client takes slot ``N`` (the fleet grows by one); a client that
stops reporting frees its slot, which the client holding the last slot moves into (one client's
slot changes, and the fleet shrinks by one). Two clients never hold one slot, so the shares of a
key dealt by one server's slots add up to the key's budget exactly.

A client counts until ``ttl_ns`` after its last report (the server passes its instructions'
validity: a few of that client's intervals). Entries are expired least recently seen first, so a
client behind a longer-lived one lingers until that one expires too: a departed client is
over-counted for at most the longest ttl, which deals the fleet a little less, never more.
Memory is bounded by ``max_clients`` (the least recently seen is forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["FleetSlots"]


class FleetSlots:
    """Clients seen reporting recently, each with a dense, stable slot; see the module
    docstring."""

    __slots__ = ("_clients", "_max_clients", "_slots", "_until")

    def __init__(self, max_clients: int) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self._max_clients = max_clients
        #: Per client: when it stops counting (ns), least recently seen first.
        self._until: OrderedDict[str, int] = OrderedDict()
        #: Per client its slot, and per slot its client (the inverse, dense).
        self._slots: dict[str, int] = {}
        self._clients: list[str] = []

    def __len__(self) -> int:
        """The fleet: clients counted now."""
        return len(self._clients)

    def seen(self, client: str, now: int, ttl_ns: int) -> tuple[int, int]:
        """Count ``client`` as reporting at ``now`` for ``ttl_ns``; the fleet and its slot."""
        until = self._until
        known = client in until
        if known:
            until.move_to_end(client)  # the common case: a client seen every cycle
        room = self._max_clients + known  # it is counted already
        while until:
            oldest = next(iter(until))
            if oldest == client or (until[oldest] >= now and len(until) < room):
                break
            del until[oldest]
            self._free(oldest)
        until[client] = now + ttl_ns
        slot = self._slots.get(client)  # after the expiry: it may have moved into a freed slot
        if slot is None:
            slot = self._slots[client] = len(self._clients)
            self._clients.append(client)
        return len(self._clients), slot

    def _free(self, client: str) -> None:
        """Drop ``client``; the last slot's client moves into its slot."""
        slot = self._slots.pop(client)
        last = self._clients.pop()
        if last != client:
            self._clients[slot] = last
            self._slots[last] = slot
