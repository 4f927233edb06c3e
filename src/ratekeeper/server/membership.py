"""A cluster member's side of membership as a passive machine: when to heartbeat, and what.

The machine takes events — the member started serving or is draining, a heartbeat was answered
or failed, an assignment update arrived from anywhere (a heartbeat, a Watch) — and answers with
what to do: the :class:`Beat` to send now, the :class:`Change` of assignment to announce, the
:class:`Failure` to wait out. It never reads a clock (``now`` is monotonic nanoseconds, passed
in) and does no IO: the asyncio driver (:mod:`ratekeeper.server.slicelet`) sends the beats and
sleeps until :attr:`Membership.next_at`.

States (the assigner's :class:`~ratekeeper.assigner.members.MemberState`, here ``State``)
follow a table of events (:data:`TRANSITIONS`): ``NOT_READY`` until the member serves, then
``RUNNING``; ``TERMINATING`` once it drains, from either. A state change makes a beat due at
once, so the assigner hears of it without waiting an interval.

A heartbeat carries the member's state, the generation it holds and the hits per second each
of its slices took since the previous beat (:meth:`SliceView.take_load`). Answered, the next is
due one interval later (the assigner's ``heartbeat_interval_ns`` once it has said one); failed,
after a doubling backoff capped at the retry maximum, while the held assignment is kept; after
each failure the member tries the next of the addresses it was given to join and the other
members it knows (:func:`fallback_target`): any member relays heartbeats, so a member that
joined through one that died finds the assigner through another, and of several assigners (a
standby answers "not leader") it settles on the one that answers. A diff
that does not fit the held assignment is dropped and the next beat, due at once, claims no
generation, so the assigner answers with the whole assignment.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ratekeeper.assigner.members import MemberState as State
from ratekeeper.core.assignment_diff import Update, apply_update
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation
from ratekeeper.server.slice_view import SliceLoad, SliceView

__all__ = [
    "TRANSITIONS",
    "Beat",
    "Change",
    "Event",
    "Failure",
    "Membership",
    "MembershipTiming",
    "State",
    "fallback_target",
]


class Event(enum.Enum):
    """What moves a member between states."""

    #: The member's listeners are up.
    SERVING = "serving"
    #: The member was told to stop (SIGTERM, a drain).
    DRAINING = "draining"


#: ``(state, event) → next state``; a pair not listed leaves the state as it is.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.NOT_READY, Event.SERVING): State.RUNNING,
    (State.NOT_READY, Event.DRAINING): State.TERMINATING,
    (State.RUNNING, Event.DRAINING): State.TERMINATING,
}


@dataclass(frozen=True, slots=True)
class MembershipTiming:
    """How often a member heartbeats, and how it backs off when the assigner is unreachable."""

    #: Between two heartbeats until the assigner names its own interval (ns).
    interval_ns: int = NS_PER_SECOND
    #: Wait after the first failed heartbeat; doubles with each further failure (ns).
    retry_initial_ns: int = NS_PER_SECOND // 10
    #: Longest wait between two attempts while the assigner is unreachable (ns).
    retry_max_ns: int = 2 * NS_PER_SECOND
    #: While failures go on, at most one warning per this long (ns).
    warn_every_ns: int = 10 * NS_PER_SECOND
    #: After this many failures in a row, try the next target (:func:`fallback_target`).
    switch_after: int = 1

    def backoff(self, failures: int) -> int:
        """The wait after ``failures`` consecutive failures (at least one)."""
        doublings = min(max(failures, 1) - 1, 32)
        return min(self.retry_initial_ns << doublings, self.retry_max_ns)


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat to send now."""

    #: The member's state.
    state: State
    #: The generation it holds (``None``: none, or it wants the whole assignment).
    known: Generation | None
    #: Hits per second of each owned slice since the previous beat.
    load: tuple[SliceLoad, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """The member now holds ``after`` instead of ``before``: announce it to the listeners."""

    #: The assignment held before (``None``: the first one).
    before: Assignment | None
    #: The assignment held now.
    after: Assignment


@dataclass(frozen=True, slots=True)
class Failure:
    """A heartbeat failed: wait ``delay_ns``; warn if ``warn`` (rate-limited)."""

    #: Until the next attempt.
    delay_ns: int
    #: Consecutive failures so far.
    failures: int
    #: Whether this failure deserves a log line (the first, then one per ``warn_every_ns``).
    warn: bool
    #: Whether to try the next target before the next attempt.
    switch: bool = False


class Membership:
    """The member's heartbeat schedule and state over its :class:`SliceView`; see the module
    docstring. Event loop only."""

    def __init__(self, view: SliceView, timing: MembershipTiming, now: int) -> None:
        #: The held assignment, the gate's ownership.
        self.view = view
        self._timing = timing
        self._interval = timing.interval_ns
        #: The member's state.
        self.state = State.NOT_READY
        #: When the next beat is due (monotonic ns); :meth:`due` returns it from then.
        self.next_at = now
        #: Consecutive failed heartbeats.
        self.failures = 0
        self._in_flight = False
        #: A beat is wanted as soon as none is in flight (a state change, a diff that did
        #: not fit), not an interval after the last one.
        self._urgent = False
        self._want_whole = False
        self._warned_at: int | None = None

    @property
    def interval_ns(self) -> int:
        """Between two answered heartbeats."""
        return self._interval

    def on(self, event: Event, now: int) -> bool:
        """Apply ``event`` at ``now``; whether the state changed (then a beat is due at once)."""
        after = TRANSITIONS.get((self.state, event), self.state)
        if after is self.state:
            return False
        self.state = after
        self._soon(now)
        return True

    def due(self, now: int) -> Beat | None:
        """The beat to send at ``now``, or ``None`` if none is due (or one is in flight)."""
        if self._in_flight or now < self.next_at:
            return None
        self._in_flight = True
        self._urgent = False
        known = None if self._want_whole else self.view.generation
        return Beat(self.state, known, self.view.take_load(now))

    def answered(self, now: int, update: Update | None, interval_ns: int = 0) -> Change | None:
        """The beat sent last was answered with ``update`` (and the assigner's interval, 0:
        unchanged); the change to announce, if the update brought one."""
        self._in_flight = False
        self.failures = 0
        self._warned_at = None
        if interval_ns > 0:
            self._interval = interval_ns
        self.next_at = now if self._urgent else now + self._interval
        return None if update is None else self.offer(update, now)

    def failed(self, now: int, targets: int = 1) -> Failure:
        """The beat sent last failed at ``now``: the held assignment stays; retry after a
        backoff that doubles once per round of the ``targets`` addresses tried in turn (the
        next address is tried soon; the same one again only after backing off)."""
        self._in_flight = False
        self.failures += 1
        delay = self._timing.backoff(-(-self.failures // max(1, targets)))
        self.next_at = now + delay
        warn = self._warned_at is None or now - self._warned_at >= self._timing.warn_every_ns
        if warn:
            self._warned_at = now
        switch = self.failures % max(1, self._timing.switch_after) == 0
        return Failure(delay, self.failures, warn, switch)

    def offer(self, update: Update, now: int) -> Change | None:
        """An update seen anywhere at ``now``; the change to announce if it is newer.

        A stale one is ignored; a diff that does not fit the held assignment is dropped and a
        beat asking for the whole assignment is made due at once."""
        held = self.view.assignment
        try:
            after = apply_update(held, update)
        except ValueError:
            self._want_whole = True
            self._soon(now)
            return None
        if after is held:
            return None
        self._want_whole = False
        before = self.view.hold(after, now)
        return Change(before, after)

    def _soon(self, now: int) -> None:
        self._urgent = True
        if not self._in_flight:
            self.next_at = min(self.next_at, now)


def fallback_target(joins: Sequence[str], current: str, held: Assignment | None, me: str) -> str:
    """Where to send heartbeats after ``current`` failed: the next, in a fixed cycle, of the
    join addresses and every other member of the held assignment (the join addresses first,
    so a member returns to them once the cycle comes round)."""
    others = sorted(held.servers - {me, *joins}) if held is not None else []
    cycle = [*joins, *others]
    at = cycle.index(current) if current in cycle else -1
    return cycle[(at + 1) % len(cycle)]
