"""Keys interned per client: the full descriptor once, then only an id and counts (issue 15).

A client that reports the same keys every 100 ms need not send, nor have the server parse, match
and hash, each key's descriptor every time. The first report of a key carries it in full with a
``key_id`` of the client's choosing; the server keeps the key's :class:`KeyShape` (its counters
and count bounds) under ``(client_id, key_id)`` and later reports carry the id and the counts
alone, as packed arrays. The server also keeps the last instruction it sent for each, so an
answer can leave out the keys whose instruction has not changed.

Bounded: at most ``max_entries`` interned keys in all; when over, the least recently reporting
clients are forgotten whole. A forgotten (or never seen) id is answered as unknown: nothing of
it is applied and the client sends the key in full again, counts included. Event loop only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ratekeeper.core.instructions import Instruction
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_keys import KeyResolver, KeyShape, ResolvedKey
from ratekeeper.protocol.report_values import KeyCounts, Report

if TYPE_CHECKING:
    from ratekeeper.protocol.report_fast import FastKey, Plan

__all__ = ["ClientKeys", "InternTable", "Interned", "Interning", "Known"]


@dataclass(slots=True, eq=False)
class Interned:
    """One interned key of one client (compared by identity, and always true: the fast path
    finds a missing one among many with ``all()``, in C)."""

    shape: KeyShape
    #: The last instruction this client was sent for it (``None``: none yet).
    last: Instruction | None = None
    #: Its counter's bucket, book and limit numbers for the fast path (:mod:`.report_fast`;
    #: ``None`` until its first steady report, or while it does not qualify).
    fast: FastKey | None = None


class ClientKeys(dict[int, Interned]):
    """One client's interned keys by id; ``version`` counts the keys interned into it, so the
    fast path's ``plan`` of the client's last steady report (:mod:`.report_fast`) is known to
    be current while it matches."""

    __slots__ = ("plan", "version")

    def __init__(self) -> None:
        super().__init__()
        self.version = 0
        self.plan: Plan | None = None


class InternTable:
    """Per client: key id → :class:`Interned`; see the module docstring."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._clients: OrderedDict[str, ClientKeys] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        """Interned keys, all clients together."""
        return self._size

    def of(self, client: str) -> ClientKeys:
        """``client``'s keys (marked most recently used); empty if it has none."""
        keys = self._clients.get(client)
        if keys is None:
            keys = self._clients[client] = ClientKeys()
        else:
            self._clients.move_to_end(client)
        return keys

    def add(self, client: str, key_id: int, shape: KeyShape) -> Interned:
        """Intern ``shape`` as ``client``'s ``key_id`` (replacing what it named before)."""
        keys = self.of(client)
        if key_id not in keys:
            self._size += 1
        keys.version += 1
        entry = keys[key_id] = Interned(shape)
        while self._size > self._max and len(self._clients) > 1:
            _, gone = self._clients.popitem(last=False)
            self._size -= len(gone)
        if self._size > self._max:  # one client alone over the bound: start it afresh
            self._size -= len(keys) - 1
            afresh = self._clients[client] = ClientKeys()
            afresh[key_id] = entry
        return entry


@dataclass(slots=True)
class Known:
    """The known keys of one report, as resolved so far."""

    #: Index into the report's ``known_ids`` of each key found, its entry and resolution.
    indexes: list[int] = field(default_factory=list)
    entries: list[Interned] = field(default_factory=list)
    keys: list[ResolvedKey] = field(default_factory=list)
    #: Ids not interned for this client.
    unknown: list[int] = field(default_factory=list)
    #: Keys this report sent in full and interned: (index in the report's keys, entry).
    fresh: list[tuple[int, Interned]] = field(default_factory=list)


class Interning:
    """Resolves a report's keys through its client's :class:`InternTable` entries."""

    def __init__(self, resolver: KeyResolver, max_entries: int) -> None:
        self.resolver = resolver
        self.table = InternTable(max_entries)

    def full(
        self,
        client: str,
        index: int,
        key: KeyCounts,
        policy: Matcher | None,
        interval: int,
        out: Known,
    ) -> ResolvedKey:
        """Key ``index`` sent in full; interned (into ``out.fresh``) if it has a ``key_id``."""
        resolver = self.resolver
        resolver.validate(index, key)
        shape = resolver.shape(key, policy)
        if key.key_id:
            out.fresh.append((index, self.table.add(client, key.key_id, shape)))
        return resolver.counted(shape, key.admitted, key.rejected, interval, index)

    def known(
        self,
        keys: dict[int, Interned],
        report: Report,
        span: tuple[int, int],
        policy: Matcher | None,
        interval: int,
        out: Known,
    ) -> None:
        """Resolve the known keys ``span`` (start, stop) of ``report`` into ``out``."""
        ids, admitted, rejected = report.known_ids, report.known_admitted, report.known_rejected
        resolver, counted = self.resolver, self.resolver.counted
        indexes, entries, resolved, unknown = out.indexes, out.entries, out.keys, out.unknown
        for i in range(*span):
            entry = keys.get(ids[i])
            if entry is None:
                unknown.append(ids[i])
                continue
            shape = entry.shape
            if shape.policy is not policy:  # reloaded: resolve it again, once
                shape = entry.shape = resolver.shape(shape.key, policy)
            indexes.append(i)
            entries.append(entry)
            resolved.append(counted(shape, admitted[i], rejected[i], interval, i))

    @staticmethod
    def sent(fresh: Sequence[tuple[int, Interned]], answers: Sequence[Instruction]) -> None:
        """Record the answers to the keys interned by this report (``Known.fresh``)."""
        for index, entry in fresh:
            entry.last = answers[index]

    @staticmethod
    def answer(
        known: Known, answers: Sequence[Instruction], omit: bool, valid_for: int
    ) -> tuple[tuple[int, ...], tuple[Instruction, ...]]:
        """The known keys to answer and their instructions: every one, or (``omit``) those
        whose instruction differs from "the last one's rate and limits, no rejection period,
        ``valid_for``" (what the client assumes for a key left out). Records what is sent."""
        changed: list[int] = []
        sent: list[Instruction] = []
        for index, entry, answer in zip(known.indexes, known.entries, answers, strict=True):
            last = entry.last
            if (
                omit
                and last is not None
                and answer.reject_for_ns == 0
                and answer.valid_for_ns == valid_for
                and answer.admit_rate == last.admit_rate
                and answer.limits == last.limits
                and not answer.error  # every field of Instruction compared: keep it so
            ):
                continue
            entry.last = answer
            changed.append(index)
            sent.append(answer)
        return tuple(changed), tuple(sent)
