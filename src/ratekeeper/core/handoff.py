"""Hand-off of counters between members, as a passive state machine.

When an assignment moves a range of key hashes from one member to another, the old owner sends
the counters it held for the range to the new owner (a *transfer*), and the new owner merges them
in. This module decides what to do and when; it performs nothing. A driver feeds it events —
an assignment change, a send that succeeded or failed, a transfer that arrived — each with the
caller's ``now`` (ns), and performs the :data:`Action` values it returns; :meth:`poll` returns
what has come due and :meth:`wake_at` when to call it next.

Outgoing (a range moved away from this member): :class:`Send` it to its new owner at once, and
again with exponential backoff after each failure until ``timeout_ns`` has passed; then
:class:`Release` it (drop its counters here), delivered or not. If a later assignment gives a
pending range to another member, the send is retargeted; if it gives it back, it is cancelled.
Reports sent before their clients learned of the move still reach this member for a while; the
range is cold here once released, so what they count lands on counters created empty, and
every ``linger_ns`` a :class:`SendLate` pass sends those on (the new owner adds the hits they
counted) and drops them (:class:`Drop`), until a pass finds none or ``late_passes`` have run.

Incoming (a range moved to this member): until its transfer has arrived, the range is *cold*:
:class:`StartEmpty` says that counters created there start empty (no fresh burst: a bucket at
zero tokens, a window counted full) as of the instant the range was gained. A complete transfer
makes it :class:`Warm` (new counters start full again: a key the old owner did not hold was
full there). If none arrives within ``timeout_ns`` the old owner is taken for dead
(:class:`Lost`) and the range stays cold: counters its old owner held are lost, and the new
ones start empty and learn from the next reports. A transfer that arrives before this member
has seen the assignment that gives it the range is remembered for ``timeout_ns``.

A transfer also says which parts of its range were cold on the sender (it had taken them over
without their counters): those stay cold here, as of the sender's mark, so a crash's loss is
not forgotten when the range moves on.

The first assignment a member holds (``before`` is ``None``) has no previous view to say who
held what. If it is its assigner's first (generation number 1: a cluster starting, or a lone
server restarting with its assigner), the slices it gives this member start full, as nothing
was held anywhere. Otherwise they were someone's before (often this member's own previous
process, whose counters died with it): they are gained like any other range, cold until a
transfer covers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from ratekeeper.core.assignment import moves, pieces
from ratekeeper.core.handoff_actions import (
    Action,
    ColdParts,
    Drop,
    HandoffTimings,
    Lost,
    Release,
    Send,
    SendLate,
    StartEmpty,
    Warm,
    cold_within,
    minus,
    overlap,
    without,
)
from ratekeeper.core.slices import Assignment, Generation, Slice

__all__ = ["HandoffMachine"]


@dataclass(slots=True)
class _Outgoing:
    target: str
    generation: Generation
    started: int
    deadline: int
    next_try: int
    attempt: int = 0
    #: The token of the send in flight, if one is.
    token: int | None = None


@dataclass(slots=True)
class _Late:
    target: str
    generation: Generation
    due: int
    passes_left: int
    token: int | None = None


@dataclass(slots=True)
class _Incoming:
    started: int
    deadline: int


@dataclass(slots=True)
class _Arrival:
    chunks: int
    #: Until when the missing chunks are waited for (a sender that gave up sends no more).
    until: int
    cold: ColdParts = ()
    seen: set[int] = field(default_factory=set)


class HandoffMachine:
    """The hand-offs of the member ``me``; see the module docstring. Not thread-safe."""

    def __init__(self, me: str, timings: HandoffTimings | None = None) -> None:
        self.me = me
        self.timings = timings or HandoffTimings()
        self._held: Assignment | None = None
        self._out: dict[Slice, _Outgoing] = {}
        self._in: dict[Slice, _Incoming] = {}
        #: Ranges handed off whose late counters are still to be passed on.
        self._late: dict[Slice, _Late] = {}
        #: Chunks seen per transfer: (source, range, generation) → arrival.
        self._arrivals: dict[tuple[str, Slice, Generation], _Arrival] = {}
        #: Complete transfers of ranges not (yet) this member's: until when they are kept, and
        #: their cold parts.
        self._early: dict[Slice, tuple[int, ColdParts]] = {}
        self._tokens = count(1)

    # --- what is pending --------------------------------------------------------------------

    @property
    def outgoing(self) -> tuple[Slice, ...]:
        """Ranges still to be handed off by this member."""
        return tuple(sorted(self._out, key=lambda s: s.low))

    @property
    def late(self) -> tuple[Slice, ...]:
        """Ranges handed off whose late passes are not over."""
        return tuple(sorted(self._late, key=lambda s: s.low))

    @property
    def incoming(self) -> tuple[Slice, ...]:
        """Ranges gained whose transfer has neither arrived nor timed out."""
        return tuple(sorted(self._in, key=lambda s: s.low))

    def wake_at(self) -> int | None:
        """When :meth:`poll` next has something to do (``None``: only on a new event)."""
        times = [o.next_try for o in self._out.values() if o.token is None]
        times += [late.due for late in self._late.values() if late.token is None]
        times += [i.deadline for i in self._in.values()]
        times += [until for until, _ in self._early.values()]
        times += [a.until for a in self._arrivals.values()]
        return min(times, default=None)

    # --- events -----------------------------------------------------------------------------

    def assignment_changed(
        self, before: Assignment | None, after: Assignment, now: int
    ) -> list[Action]:
        """The member's assignment went from ``before`` to ``after``."""
        self._held = after
        self._retarget(after, now)
        actions: list[Action] = []
        if before is None and after.generation.number > 1:  # see the module docstring
            for piece in after.slices_of(self.me):
                actions += self._gain(piece, now)
        for move in moves(before, after) if before is not None else ():
            if move.source == self.me:
                self._cut_incoming(move.slice)  # gained and lost again before any transfer
                self._out[move.slice] = self._outgoing(move.target, after.generation, now, now)
            elif move.target == self.me:
                actions += self._gain(move.slice, now)
        return actions + self.poll(now)

    def sent(self, token: int, now: int) -> list[Action]:
        """The send ``token`` was confirmed by its target."""
        found = self._by_token(token)
        if found is None:
            return []  # retargeted or cancelled meanwhile
        piece, pending = found
        del self._out[piece]
        if self.timings.late_passes > 0:
            due = now + self.timings.linger_ns
            self._late[piece] = _Late(
                pending.target, pending.generation, due, self.timings.late_passes
            )
        return [Release(piece, True, pending.started, now)]

    def late_sent(self, token: int, counters: int, now: int) -> list[Action]:
        """The late pass ``token`` found ``counters`` counters and its target took them."""
        found = self._late_by_token(token)
        if found is None:
            return []
        piece, late = found
        late.token = None
        late.passes_left -= 1
        if not counters or not late.passes_left:
            del self._late[piece]
        else:
            late.due = now + self.timings.linger_ns
        return [Drop(piece)] if counters else []

    def failed(self, token: int, now: int) -> list[Action]:
        """The send ``token`` failed (unreachable target, error, deadline)."""
        late = self._late_by_token(token)
        if late is not None:  # a late pass is not retried: its counters are dropped
            del self._late[late[0]]
            return [Drop(late[0])]
        found = self._by_token(token)
        if found is None:
            return []
        piece, pending = found
        pending.token = None
        wait = self.timings.first_retry_ns << min(pending.attempt, 32)
        pending.attempt += 1
        pending.next_try = now + min(wait, self.timings.max_retry_ns)
        if pending.next_try >= pending.deadline:
            del self._out[piece]
            return [Release(piece, False, pending.started, now)]
        return []

    def received(
        self,
        source: str,
        piece: Slice,
        generation: Generation,
        chunk: int,
        chunks: int,
        now: int,
        cold: ColdParts = (),
    ) -> list[Action]:
        """Chunk ``chunk`` of ``chunks`` of ``source``'s transfer of ``piece`` was merged in;
        ``cold`` are the parts cold on the sender, with their instants on this clock."""
        key = (source, piece, generation)
        until = now + self.timings.timeout_ns
        arrival = self._arrivals.setdefault(key, _Arrival(chunks, until))
        if arrival.chunks != chunks:  # a resend cut differently: count it afresh
            arrival = self._arrivals[key] = _Arrival(chunks, until)
        arrival.seen.add(chunk)
        arrival.cold = cold
        if len(arrival.seen) < chunks:
            return []
        del self._arrivals[key]
        return self._complete(piece, now, cold)

    def poll(self, now: int) -> list[Action]:
        """Sends now due, and waits for transfers now over."""
        actions: list[Action] = []
        for piece, pending in sorted(self._out.items(), key=lambda kv: kv[0].low):
            if pending.token is None and pending.next_try <= now:
                pending.token = next(self._tokens)
                generation = pending.generation
                actions.append(
                    Send(piece, pending.target, generation, pending.token, pending.deadline)
                )
        for piece, late in sorted(self._late.items(), key=lambda kv: kv[0].low):
            if late.token is None and late.due <= now:
                late.token = next(self._tokens)
                deadline = now + self.timings.timeout_ns
                actions.append(SendLate(piece, late.target, late.generation, late.token, deadline))
        for piece, waiting in list(self._in.items()):
            if waiting.deadline <= now:
                del self._in[piece]
                actions.append(Lost(piece, waiting.started))
        for piece, (until, _) in list(self._early.items()):
            if until <= now:
                del self._early[piece]
        for key, arrival in list(self._arrivals.items()):
            if arrival.until <= now:
                del self._arrivals[key]
        return actions

    # --- helpers ----------------------------------------------------------------------------

    def _outgoing(self, target: str, generation: Generation, started: int, now: int) -> _Outgoing:
        return _Outgoing(target, generation, started, now + self.timings.timeout_ns, now)

    def _retarget(self, after: Assignment, now: int) -> None:
        """Pending sends of ranges the new assignment gives to someone else, or back to me.

        Late passes stop for a range that moved on again: what it holds here is merged into
        whatever this member is sent for it, or handed off with the rest of the range."""
        for piece, late in list(self._late.items()):
            if any(o != late.target for s, o in pieces(after) if overlap(s, piece) is not None):
                del self._late[piece]
        for piece, pending in list(self._out.items()):
            owners = [(p, o) for s, o in pieces(after) if (p := overlap(s, piece)) is not None]
            if all(o == pending.target for _, o in owners):
                continue
            del self._out[piece]
            for part, owner in owners:
                if owner == self.me:
                    continue  # it came back before it left: its counters are still here
                self._out[part] = self._outgoing(owner, after.generation, pending.started, now)

    def _gain(self, piece: Slice, now: int) -> list[Action]:
        """``piece`` became this member's: cold until a transfer covers it."""
        actions: list[Action] = []
        waiting = [piece]
        for early, (_, cold) in self._early.items():
            if (covered := overlap(early, piece)) is not None:
                waiting = [rest for part in waiting for rest in minus(part, early)]
                actions += cold_within(covered, cold)
        for part in waiting:
            self._in[part] = _Incoming(now, now + self.timings.timeout_ns)
            actions.append(StartEmpty(part, now))
        return actions

    def _complete(self, piece: Slice, now: int, cold: ColdParts) -> list[Action]:
        """A whole transfer of ``piece`` is in: what of it this member owns is warm."""
        actions: list[Action] = [Warm(part, started) for part, started in self._cut_incoming(piece)]
        held = self._held.slices_of(self.me) if self._held is not None else ()
        owned = [part for mine in held if (part := overlap(mine, piece)) is not None]
        # Owned but no longer waited for: a transfer that arrived after the wait ended.
        waited = [a.slice for a in actions]
        actions += [Warm(rest, None) for part in owned for rest in without(part, waited)]
        # Kept in case this member has yet to see the assignment that gives it the range (its
        # view may even still say it owns the range from before it was moved away and back).
        for part in owned:  # after the warm parts: these stay cold
            actions += cold_within(part, cold)
        for rest in without(piece, waited):
            self._early[rest] = (now + self.timings.timeout_ns, cold)
        return actions

    def _cut_incoming(self, piece: Slice) -> list[tuple[Slice, int]]:
        """Stop waiting for transfers inside ``piece``: the parts that were waited for, each
        with when it was gained."""
        cut: list[tuple[Slice, int]] = []
        for waiting_piece, waiting in list(self._in.items()):
            if (part := overlap(waiting_piece, piece)) is None:
                continue
            del self._in[waiting_piece]
            for rest in minus(waiting_piece, piece):
                self._in[rest] = waiting
            cut.append((part, waiting.started))
        return cut

    def _late_by_token(self, token: int) -> tuple[Slice, _Late] | None:
        for piece, late in self._late.items():
            if late.token == token:
                return piece, late
        return None

    def _by_token(self, token: int) -> tuple[Slice, _Outgoing] | None:
        for piece, pending in self._out.items():
            if pending.token == token:
                return piece, pending
        return None
