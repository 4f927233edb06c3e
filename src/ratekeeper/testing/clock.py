"""A clock that moves only when told: the ``now`` source of servers and clients under test.

Every part of ratekeeper takes its clock as a ``Callable[[], int]`` returning nanoseconds, so a
test hands it a :class:`ManualClock` and decides exactly when time passes.
"""

from __future__ import annotations

from ratekeeper.core.limits import NS_PER_SECOND

__all__ = ["START_NS", "ManualClock"]

#: 5.5 s into a minute (and an hour) of the epoch: fixed-window resets are easy to read.
START_NS = 1_700_002_805 * NS_PER_SECOND + NS_PER_SECOND // 2


class ManualClock:
    """Nanoseconds that move only through :meth:`advance`; call it to read the time."""

    def __init__(self, now: int = START_NS) -> None:
        #: The current reading, in nanoseconds (since the epoch by default).
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (rounded to the nanosecond)."""
        self.now += round(seconds * NS_PER_SECOND)
