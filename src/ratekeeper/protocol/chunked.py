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
from contextvars import ContextVar
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

    def spans(self, n: int, scale: int = 1) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each chunk of ``n`` items, chunks ``scale`` times the size (for
        items that cost a fraction of the ones the size was chosen for)."""
        size = self.size * scale
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


#: A start no clock reaches: a report that never rests.
_NEVER = 1 << 62


class TimeBudget:
    """A :data:`Pause` that rests a report ``rest_ns`` on the event loop once it has run
    ``budget_ns`` (on ``clock``) since it started or last rested; otherwise it costs one clock
    read.

    Yielding on time rather than on a key count bounds the wait of a call that arrives during a
    report whatever a key costs. The rest is a real sleep, not ``sleep(0)``: measured on this
    two-core machine (docs/benchmarks.md, "Large reports"), a loop that only passes through its
    selector between chunks still delays gRPC's completions by several milliseconds, one that
    blocks in it for a moment lets them in. The budget is each report's own (a context
    variable: one report is one task), so many small reports in flight do not make the server
    rest while work waits: only a report that itself runs past the budget rests, and the loop
    runs the others meanwhile. A report of fewer than ``rest_from_keys`` keys never rests: it is
    over in a few milliseconds anyway, and on a loaded machine each rest costs a trip through
    the OS scheduler (measured: 100-key reports with rests missed their 100 ms deadline by the
    hundred in ``bench.fanin``). Call :meth:`enter` as a report starts.
    """

    def __init__(
        self, budget_ns: int, rest_ns: int, clock: Callable[[], int], rest_from_keys: int = 0
    ) -> None:
        self.budget_ns = budget_ns
        self.rest_ns = rest_ns
        self.rest_from_keys = rest_from_keys
        self._clock = clock
        #: When the current task's report started or last rested.
        self._since: ContextVar[int] = ContextVar(f"budget-{id(self)}", default=0)
        #: Times it rested.
        self.rests = 0

    def enter(self, keys: int) -> None:
        """The current task starts a report of ``keys`` keys: its budget counts from now."""
        self._since.set(self._clock() if keys >= self.rest_from_keys else _NEVER)

    async def __call__(self) -> None:
        if self._clock() - self._since.get() < self.budget_ns:
            return
        await asyncio.sleep(self.rest_ns / 1e9)
        self.rests += 1
        self._since.set(self._clock())
