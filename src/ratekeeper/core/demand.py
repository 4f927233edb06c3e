"""Every client's recent demand per counter, and the share of a policy each client is granted.

A server splits a counter's refill rate among the clients reporting it in proportion to their
demand (:func:`~ratekeeper.core.instructions.instruct`). That needs, per counter, each client's
latest :data:`Demand`; :class:`DemandBook` keeps them, bounded
whatever clients send:

* an entry older than ``ttl_ns``, or than the entry's own ttl if longer (a few of its client's
  report intervals: a client that reports every second still counts between its reports), no
  longer counts (a client that stopped reporting stops taking a share) and is dropped when its
  counter is next touched, or in a sweep when the book is full (at most one sweep per quarter
  ``ttl_ns``: a book full of fresh entries would otherwise be rescanned for every new one, and
  one report of 10,000 new keys stalled the server for minutes);
* at most ``max_clients`` entries per counter and ``max_entries`` in all. A client that finds no
  room is not recorded, but its own demand still counts towards its own share, so it is never
  granted more than a recorded client would be.

:func:`until_repaid` shortens a reject-for to the time until the debt is repaid (the bucket back
at zero) rather than until a whole token is available: once the debt is gone the client's pace
spaces its hits anyway, and waiting for one more token on top would lose up to a token's time
every report cycle (10% of a 100/s policy at 100 ms reports).

Pure: time is a parameter; the book is mutated only by its owner (the server's event loop).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import itemgetter
from typing import Generic, Protocol, TypeVar

from ratekeeper.core.instructions import Instruction
from ratekeeper.core.limits import Limit

__all__ = ["Book", "Demand", "DemandBook", "Holder", "until_repaid"]

K = TypeVar("K", bound=Hashable)
K_co = TypeVar("K_co", bound=Hashable, covariant=True)


#: One client's most recent demand for a key: ``(rate, at, ttl_ns)``, its hits per second
#: (admitted + rejected) over the client's last report interval, when the server received it
#: (server clock, ns), and how long it counts (the book's ``ttl_ns``, or longer for a client
#: reporting every few seconds: it must not drop out of the total between its reports). A plain
#: tuple: one is built per key per report, and a class's (or a NamedTuple's) constructor call
#: is several times the cost of the tuple itself.
Demand = tuple[float, int, int]
_RATE: Callable[[Demand], float] = itemgetter(0)
#: The ``stale_after`` of a book with no entries.
_NEVER = 1 << 62


class Book(dict[str, Demand]):
    """One counter's demand by client, and a lower bound on its entries' expiries (``at +
    ttl_ns``): none is stale before ``stale_after``, so the book is scanned only after it.
    ``live`` turns false when the book is dropped from its :class:`DemandBook`, so a caller
    may keep a reference (:class:`Holder`) instead of looking the book up by key."""

    __slots__ = ("live", "stale_after")

    def __init__(self) -> None:
        super().__init__()
        self.stale_after = _NEVER
        self.live = True


class Holder(Protocol[K_co]):
    """A caller's handle on one key's book: the key, and the book as last seen (``None``: none
    yet, or unknown), which :meth:`DemandBook.record_each` refreshes."""

    @property
    def key(self) -> K_co: ...

    book: Book | None


class DemandBook(Generic[K]):
    """Latest demand of each client per counter key; see the module docstring for the bounds."""

    __slots__ = (
        "_books",
        "_entries",
        "_next_sweep",
        "max_clients",
        "max_entries",
        "ttl_ns",
    )

    def __init__(self, ttl_ns: int, *, max_clients: int = 256, max_entries: int = 100_000) -> None:
        #: How long a reported demand counts (a few report intervals).
        self.ttl_ns = ttl_ns
        #: Most clients remembered per counter.
        self.max_clients = max_clients
        #: Most (counter, client) entries remembered in all.
        self.max_entries = max_entries
        self._books: dict[K, Book] = {}
        self._entries = 0
        #: A full book is not swept again before this instant.
        self._next_sweep: int | None = None

    def __len__(self) -> int:
        """Entries held (fresh or not yet swept)."""
        return self._entries

    def record(self, key: K, client: str, rate: float, now: int, ttl_ns: int = 0) -> float:
        """Record ``client``'s demand for ``key``, counting for ``ttl_ns`` if longer than the
        book's; the total fresh demand including it."""
        books = self._books
        book = books.get(key)
        if book is None or self._expire(key, book, now):
            book = books[key] = Book()
        if client not in book:
            if not self._room(book, now):
                return rate + sum(map(_RATE, book.values()))
            self._entries += 1
        ttl = max(self.ttl_ns, ttl_ns)
        book[client] = (rate, now, ttl)
        if now + ttl < book.stale_after or len(book) == 1:  # its one entry: the bound is exact
            book.stale_after = now + ttl
        return sum(map(_RATE, book.values()))

    def record_each(
        self,
        client: str,
        holders: Sequence[Holder[K]],
        rates: Sequence[float],
        now: int,
        ttl_ns: int = 0,
    ) -> list[float]:
        """:meth:`record` for each holder's key (distinct keys) and rate, in order: the totals.

        The common case, a book already holding ``client`` with no entry due to expire, is
        recorded without the method call or the key's lookup; any other goes through
        :meth:`record`, with the same result."""
        ttl = max(self.ttl_ns, ttl_ns)
        until, books, record = now + ttl, self._books, self.record
        rate_of = _RATE
        totals: list[float] = []
        add = totals.append
        for holder, rate in zip(holders, rates, strict=True):
            book = holder.book
            if book is None or not book.live or now > book.stale_after or client not in book:
                add(record(holder.key, client, rate, now, ttl_ns))
                holder.book = books.get(holder.key)
                continue
            book[client] = (rate, now, ttl)
            if len(book) == 1:  # its one entry: the bound is exact, the total its rate
                book.stale_after = until
                add(rate)
                continue
            if until < book.stale_after:
                book.stale_after = until
            add(sum(map(rate_of, book.values())))
        return totals

    def clients(self, key: K, client: str) -> int:
        """Clients recorded for ``key`` (fresh, or not yet expired when it was last touched),
        ``client`` counted whether recorded or not."""
        book = self._books.get(key)
        if book is None:
            return 1
        return len(book) + (client not in book)

    def sweep(self, now: int) -> None:
        """Drop every stale entry (and counters left with none)."""
        for key, book in list(self._books.items()):
            self._expire(key, book, now)

    def _room(self, book: Book, now: int) -> bool:
        if len(book) >= self.max_clients:
            return False
        if self._entries >= self.max_entries and (
            self._next_sweep is None or now >= self._next_sweep
        ):
            self.sweep(now)  # only a full book pays for a scan, at most once per ttl / 4
            self._next_sweep = now + max(1, self.ttl_ns // 4)
        return self._entries < self.max_entries

    def _expire(self, key: K, book: Book, now: int) -> bool:
        """Drop ``book``'s stale entries; True if that left it empty and it was dropped too."""
        if now <= book.stale_after:
            return False  # no entry can have expired yet
        stale = [client for client, (_, at, ttl) in book.items() if now - at > ttl]
        for client in stale:
            del book[client]
        self._entries -= len(stale)
        book.stale_after = min([at + ttl for _, at, ttl in book.values()], default=_NEVER)
        if not book and stale:
            del self._books[key]
            book.live = False
            return True
        return False


def until_repaid(instruction: Instruction, limit: Limit) -> Instruction:
    """``instruction`` rejecting only until the counter's debt is repaid (level back to zero)."""
    if limit.amount == 0 or instruction.reject_for_ns <= 0:
        return instruction
    token_ns = -(-limit.period_ns // limit.amount)
    return Instruction(
        max(0, instruction.reject_for_ns - token_ns),
        instruction.admit_rate,
        instruction.valid_for_ns,
        instruction.limits,
        instruction.error,
    )
