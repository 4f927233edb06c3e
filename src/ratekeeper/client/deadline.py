"""A report deadline that follows the measured round trip to one server.

A fixed deadline below the round trip (a slow cross-region link, a loaded network) times out
every report: nothing is ever answered, every key fails open, and the global limit is gone
without a single error but the failure count. So each server's deadline is the limiter's
``timeout`` (the floor) until a report times out; then it doubles, up to the cap, and answers
in time bring it back down: it tracks a smoothed round trip and its variation the way TCP does
(RFC 6298: ``srtt + 4 * rttvar``), never below the floor nor above the cap.

The cap is one report interval (or the floor, if that is longer): both drivers wait for a
cycle's reports before the next cycle, and a virtual-time driver settles a report still in
flight as failed at the next cycle (one report per server is in flight: a server applies a
client's report numbers in order), so a longer deadline would only stall every server's
cycle behind a hanging one. A round trip longer than the interval stays unanswered.

Pure: round trips are passed in, as seconds; nothing here reads a clock.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ReportDeadline", "ServerDeadlines"]

#: RFC 6298's gains: a sample moves the smoothed round trip by 1/8 and its variation by 1/4.
_ALPHA = 1 / 8
_BETA = 1 / 4
#: How many variations above the smoothed round trip the deadline sits (RFC 6298's K).
_K = 4


class ReportDeadline(NamedTuple):
    """How long the next report to one server may take (its share per key aside).

    A tuple rather than a frozen dataclass: one is made per answer, and a tuple is built at a
    fraction of the cost."""

    #: Seconds: the limiter's configured ``timeout``; the deadline never goes below it.
    floor: float
    #: Seconds: the deadline never goes above it (see the module docstring).
    cap: float
    #: Seconds: the deadline now, within ``[floor, cap]``.
    current: float
    #: Seconds: the smoothed round trip of answered reports (``None``: none answered yet).
    srtt: float | None = None
    #: Seconds: the smoothed deviation of round trips from ``srtt``.
    rttvar: float = 0.0

    @classmethod
    def starting(cls, floor: float, interval: float) -> ReportDeadline:
        """The deadline of a server not yet reported to: the floor, capped at ``interval``."""
        return cls(floor, max(floor, interval), floor)

    def answered(self, rtt: float) -> ReportDeadline:
        """After a report answered ``rtt`` seconds after it was sent."""
        if self.srtt is None:
            srtt, rttvar = rtt, rtt / 2
        else:
            srtt, rttvar = self.srtt, self.rttvar
            rttvar += _BETA * (abs(srtt - rtt) - rttvar)
            srtt += _ALPHA * (rtt - srtt)
        current = min(self.cap, max(self.floor, srtt + _K * rttvar))
        return ReportDeadline(self.floor, self.cap, current, srtt, rttvar)

    def timed_out(self) -> ReportDeadline:
        """After a report went unanswered for its whole deadline: double it (up to the cap).

        The variation grows to match, so the answers that follow bring the deadline down a
        quarter of the excess at a time rather than at once back to the round trip that just
        timed out."""
        current = min(self.cap, 2 * self.current)
        if self.srtt is None:
            return self._replace(current=current)
        rttvar = max(self.rttvar, (current - self.srtt) / _K)
        return self._replace(current=current, rttvar=rttvar)


class ServerDeadlines:
    """Each server's :class:`ReportDeadline`, and the longest of them (for the stats).

    A server is followed only from its first timeout until its deadline is back at the floor:
    below the floor the estimate changes nothing, and an answer to a server at the floor then
    costs one lookup (the model settles millions)."""

    __slots__ = ("_first", "followed", "longest")

    def __init__(self, floor: float, interval: float) -> None:
        """``floor``: the limiter's timeout; ``interval``: its report interval (the cap)."""
        self._first = ReportDeadline.starting(floor, interval)
        #: The servers followed, by address (empty: every deadline is the floor; read only).
        self.followed: dict[str, ReportDeadline] = {}
        #: Seconds: the longest current deadline of any server (the floor if none has grown).
        self.longest = floor

    def of(self, address: str) -> float:
        """Seconds the next report to ``address`` may take (its share per key aside)."""
        return self.followed.get(address, self._first).current

    def answered(self, address: str, rtt: float) -> None:
        """A report to ``address`` was answered ``rtt`` seconds after it was sent."""
        old = self.followed.get(address)
        if old is None:
            return  # at the floor, no timeout since
        new = old.answered(rtt)
        if new.current <= new.floor:
            del self.followed[address]  # back at the floor: its next timeout starts afresh
        else:
            self.followed[address] = new
        if new.current != old.current:
            self._update_longest()

    def failed(self, address: str, elapsed: float) -> None:
        """A report to ``address`` failed ``elapsed`` seconds after it was sent: a timeout if
        that is its whole deadline (a refusal says nothing about the round trip)."""
        old = self.followed.get(address, self._first)
        if elapsed >= old.current:
            new = self.followed[address] = old.timed_out()
            if new.current != old.current:
                self._update_longest()

    def forget(self, address: str) -> None:
        """``address`` left the assignment."""
        if self.followed.pop(address, None) is not None:
            self._update_longest()

    def _update_longest(self) -> None:
        deadlines = self.followed.values()
        self.longest = max((d.current for d in deadlines), default=self._first.floor)
