"""Large reports applied in chunks, with a pause between chunks (issue 15, item 4: no stalls).

A server is one event loop: a 10,000-key report applied in one go holds it for hundreds of
milliseconds, and every ``ShouldRateLimit`` arriving meanwhile waits that long. The report logic
therefore walks a report's keys ``size`` at a time and awaits an injected :data:`Pause` between
chunks. The logic stays transport- and clock-free: what a pause does is its driver's business
(the gRPC servicer's yields to the event loop once a time budget is spent,
:class:`TimeBudget`; the virtual-time model passes none, so a report never suspends there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["Chunker", "Pause", "TimeBudget"]

T = TypeVar("T")
R = TypeVar("R")

#: Awaited between two chunks of a report; may yield to the event loop.
Pause = Callable[[], Awaitable[None]]


class Chunker:
    """Walks sequences ``size`` items at a time, awaiting ``pause`` between chunks (none:
    never suspends)."""

    def __init__(self, size: int, pause: Pause | None = None) -> None:
        if size <= 0:
            raise ValueError("chunk size must be positive")
        self.size = size
        self.pause = pause

    def spans(self, n: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each chunk of ``n`` items."""
        size = self.size
        for start in range(0, n, size):
            yield start, min(start + size, n)

    async def between(self, stop: int, n: int) -> None:
        """Pause after a chunk ending at ``stop`` of ``n`` items (not after the last one)."""
        if self.pause is not None and stop < n:
            await self.pause()

    async def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]``, pausing between chunks."""
        if self.pause is None or len(items) <= self.size:
            return [fn(x) for x in items]
        out: list[R] = []
        n = len(items)
        for start, stop in self.spans(n):
            out.extend(fn(x) for x in items[start:stop])
            await self.between(stop, n)
        return out


class TimeBudget:
    """A :data:`Pause` that, once ``budget_ns`` have passed (on ``clock``) since it last
    paused, sleeps ``rest_ns`` on the event loop; otherwise it costs one clock read.

    Yielding on time rather than on a key count bounds the wait of a call that arrives during a
    report whatever a key costs. The rest is a real sleep, not ``sleep(0)``: measured on this
    two-core machine (docs/benchmarks.md, "Large reports"), a loop that only passes through its
    selector between chunks still delays gRPC's completions by several milliseconds, one that
    blocks in it for a moment lets them in. A report is slowed by about ``rest / budget``
    (plus the selector's millisecond rounding) only while it is long enough to reach the budget.
    One per servicer: every report in progress shares it.
    """

    def __init__(self, budget_ns: int, rest_ns: int, clock: Callable[[], int]) -> None:
        self.budget_ns = budget_ns
        self.rest_ns = rest_ns
        self._clock = clock
        self._since = clock()
        self._active = 0
        #: Times it rested.
        self.rests = 0

    def enter(self) -> None:
        """A report starts: the budget counts from now if none was in progress (time the loop
        spent idle or on other calls is not charged to it)."""
        if not self._active:
            self._since = self._clock()
        self._active += 1

    def leave(self) -> None:
        """A report :meth:`enter` counted is done."""
        self._active -= 1

    async def __call__(self) -> None:
        now = self._clock()
        if now - self._since < self.budget_ns:
            return
        await asyncio.sleep(self.rest_ns / 1e9)
        self.rests += 1
        self._since = self._clock()
