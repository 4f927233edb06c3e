"""The clerk's routing table: which server owns a key, by the assignment this client holds.

Pure: no socket, no clock. A :class:`RoutingTable` holds one
:class:`~ratekeeper.core.slices.Assignment` and answers ``owner_of(key_hash)`` with a bisect over
the slice starts (the same answer as ``Assignment.owner_of``, without its range check: a key
state's hash is 64-bit by construction). It adopts whatever is newer — a whole assignment from a
Watch or a report's answer, or a diff against the one it holds — and never goes back to an older
generation (:func:`~ratekeeper.core.assignment_diff.apply_update`).

A table is immutable: adopting returns a new table with the next :attr:`RoutingTable.version` (a
plain int), so a report cycle that took a table routes all its keys by one assignment and names
that one's generation, whoever adopts meanwhile. A key's owner is cached on its state (:func:`route`
reads and writes ``owner`` and ``routed``), so a key routed by the same table before costs one int
comparison and one attribute read per report cycle; only after an adoption does it pay the bisect
again.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Protocol

from ratekeeper.core.assignment_diff import Update, apply_update
from ratekeeper.core.slices import Assignment, Generation

__all__ = ["Routed", "RoutingTable", "route"]


class Routed(Protocol):
    """What :func:`route` caches its answer on (a client key state)."""

    #: The key's 64-bit hash.
    key_hash: int
    #: Its owner, as of table version ``routed``.
    owner: str
    #: The table version ``owner`` was computed at (-1: never).
    routed: int


class RoutingTable:
    """One assignment to route by, and its version; immutable (see the module docstring)."""

    __slots__ = ("_owners", "_starts", "assignment", "version")

    def __init__(self, assignment: Assignment, version: int = 0) -> None:
        #: The assignment held.
        self.assignment = assignment
        #: Distinct for every table a client holds in turn (owners cached at another are stale).
        self.version = version
        self._starts = assignment.starts
        self._owners = assignment.owners

    @property
    def generation(self) -> Generation:
        """The generation of the assignment held."""
        return self.assignment.generation

    @property
    def servers(self) -> frozenset[str]:
        """Every owner of a slice in the assignment held."""
        return self.assignment.servers

    def owner_of(self, key_hash: int) -> str:
        """The owner of ``key_hash`` (``0 <= key_hash < 2**64``, unchecked)."""
        return self._owners[bisect_right(self._starts, key_hash) - 1]

    def adopt(self, update: Update) -> RoutingTable:
        """The table after ``update`` (a whole assignment, or a diff against the one held):
        ``self`` unless it is newer. A diff that does not fit raises :class:`ValueError`."""
        return self.replace(apply_update(self.assignment, update))

    def replace(self, assignment: Assignment) -> RoutingTable:
        """The table holding ``assignment`` whatever its generation (the first one learned
        replaces the provisional one a client starts with); ``self`` if it is the one held."""
        if assignment is self.assignment:
            return self
        return RoutingTable(assignment, self.version + 1)


def route(table: RoutingTable, state: Routed) -> str:
    """The owner of ``state``'s key, cached on ``state`` until ``table`` adopts another
    assignment."""
    if state.routed != table.version:
        state.owner = table._owners[bisect_right(table._starts, state.key_hash) - 1]
        state.routed = table.version
    return state.owner
