"""One key's client-side state: the schedules that decide it, its counts, its instruction.

A key is decided by one or more *lanes*, each a GCRA schedule (:mod:`ratekeeper.core.pacing`):
one per limit of its policy (``"2/s; 4/minute"`` has two, so the local limiter holds the key to
every limit, not only the shortest), plus one for a server-granted rate that is looser than the
policy's own rate. A hit is admitted when every lane admits it, and then every lane advances.

Most keys have one lane, and then it lives in the flat fields ``earliest``, ``emission``,
``tolerance`` and ``burst`` that the decision path reads inline (``lanes`` is ``None``). A key
with several lanes keeps them in ``lanes`` and its flat fields are arranged so that the very same
inline code decides it, with no test for lanes on the decision path:

* ``earliest`` is the latest of the lanes' (a hit is admissible when every lane admits it, so
  the rejection test stays one comparison);
* ``tolerance`` is :data:`ALWAYS_RESTART` and ``burst`` 0, so an admitted hit always "restarts"
  the flat schedule at exactly ``now``;
* ``emission`` is an :class:`AdmitAll`, whose ``now + emission`` advances every lane for the
  hit and returns the new latest ``earliest``.

Who writes what: request threads write ``earliest`` (and the lanes') without a lock and count into
``admitted`` / ``rejected``; the reporter (:class:`~ratekeeper.client.machine.LimiterMachine`)
writes everything else. Counts are ``itertools.count`` objects: ``next()`` is one C call the GIL
never interrupts, so concurrent increments are never lost. The reporter reads a count with
``next()`` as well and subtracts the increments its own reads made (:meth:`KeyState.drain`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

from ratekeeper.client.lanes import AdmitAll, Lane, strictest_first
from ratekeeper.client.policy import KeyPolicy, local_limit
from ratekeeper.core import pacing
from ratekeeper.core.instructions import Instruction
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import limit_to_spec

__all__ = ["ALWAYS_RESTART", "FREE", "FRESH", "AdmitAll", "KeyState", "Lane", "apply_instruction"]

#: The pace of a key with no known limit: ``earliest`` never moves, every hit is admitted (the
#: tolerance reaches past :data:`FRESH`, so a fresh schedule stays fresh for a later limit).
FREE = pacing.Pace(0, 2 * pacing.NEVER, 0)
#: The ``earliest`` of a fresh schedule: far enough in the past that its first hit restarts it
#: with the full burst, however young the monotonic clock is (it starts near 0 at boot, and a
#: per-day limit's burst spans a day).
FRESH = -pacing.NEVER
#: The flat ``tolerance`` of a key with several lanes: ``earliest < now - tolerance`` always
#: holds, so every admission restarts the flat schedule at ``now`` (see the module docstring).
ALWAYS_RESTART = -pacing.NEVER


class KeyState:
    """One key's local state; see the module docstring for who writes what."""

    __slots__ = (
        "admitted",
        "blocks",
        "burst",
        "calm",
        "dealt",
        "dealt_heard",
        "dealt_until",
        "earliest",
        "emission",
        "grant",
        "granted_until",
        "instructed_until",
        "key_hash",
        "lanes",
        "limit",
        "limits",
        "owner",
        "pace",
        "rejected",
        "routed",
        "seen_admitted",
        "seen_rejected",
        "template",
        "tolerance",
        "unsent_admitted",
        "unsent_rejected",
    )

    def __init__(self, domain: str, resolved: KeyPolicy) -> None:
        #: First instant (monotonic ns) the next hit may be admitted (by every lane).
        self.earliest = FRESH
        #: The single lane's pace, and its numbers copied flat for the decision path.
        self.pace = FREE
        self.emission: int | AdmitAll = 0
        self.tolerance = pacing.NEVER
        self.burst = 0
        #: The lanes of a key with several (``None``: one lane, in the flat fields).
        self.lanes: list[Lane] | None = None
        #: Hits admitted / rejected so far (never reset; read only through :meth:`drain`).
        self.admitted = itertools.count()
        self.rejected = itertools.count()
        #: What the reporter's last reads returned, and counts read but not yet reported.
        self.seen_admitted = -1
        self.seen_rejected = -1
        self.unsent_admitted = 0
        self.unsent_rejected = 0
        #: A server-granted rate (hits/s) and when it reverts (0: no grant in force).
        self.grant = math.inf
        self.granted_until = 0
        #: Until when a server's instruction (a rejection period or a rate) is in force.
        self.instructed_until = 0
        #: The dealt pace of the strictest window while a deal holds (:meth:`deal`); the
        #: instant from which an answer ends it (0: no deal; -1: ended by a rate, the position
        #: still holding dealt future that an answer within the policy gives back); what the
        #: last answer during it said (0: none came, 1: within the policy, 2: over it).
        self.dealt: pacing.Pace | None = None
        self.dealt_until = 0
        self.dealt_heard = 0
        #: While a deal holds: where to note the key calm (key hash -> instant) if an answer
        #: ends the deal within the policy (:class:`ratekeeper.client.dealing.Dealer`).
        self.calm: dict[int, int] | None = None
        self.key_hash = resolved.key_hash
        #: The server this key's counts go to, as of routing-table version ``routed`` (-1:
        #: not routed yet); written by the reporter (:func:`ratekeeper.client.routing.route`).
        self.owner = ""
        self.routed = -1
        #: The policy's limits, strictest window first; ``limit`` is the first (``None``: none).
        self.limits: tuple[Limit, ...] = ()
        self.limit: Limit | None = None
        #: Whether some limit of ``limits`` is 0 (:meth:`limit_blocks`, read per instruction).
        self.blocks = False
        #: The report entry for this key, counts excepted, serialised (bytes are an object the
        #: cyclic collector need not track: a full collection's pause grows with every tracked
        #: object, and a client may hold a hundred thousand keys); inline limits ride along.
        self.template = pb.KeyReport(
            domain=domain,
            entries=[pb.Entry(key=k, value=v) for k, v in resolved.entries],
            limits=[limit_to_spec(lim) for lim in resolved.limits] if resolved.inline else [],
        ).SerializeToString()
        self.set_limits(resolved.limits, 0)

    # --- the reporter's steps ------------------------------------------------------------------

    def drain(self) -> tuple[int, int]:
        """Hits admitted and rejected since the previous call (reporter only).

        Each read is a ``next()`` that counts one phantom increment of its own: read ``k``
        returns the real hits so far plus ``k - 1``, so the difference of two reads, less one,
        is the real hits between them (``seen_*`` start at -1 for the first read).
        """
        admitted, rejected = next(self.admitted), next(self.rejected)
        fresh = admitted - self.seen_admitted - 1, rejected - self.seen_rejected - 1
        self.seen_admitted, self.seen_rejected = admitted, rejected
        return fresh

    def set_limits(self, limits: Sequence[Limit], now: int) -> None:
        """Enforce every one of ``limits`` locally from now on (the policy lanes)."""
        if limits == self.limits and limits:
            return  # what nearly every answer says: the limits in force (already ordered)
        ordered = strictest_first(limits)
        if ordered == self.limits and limits:
            return
        blocks = any(_policy_pace(x) is None for x in ordered)
        if self.blocks and not blocks:
            self._set_earliest(now)  # a limit of 0 was lifted: start from empty, forgive nothing
        self.limits, self.limit, self.blocks = ordered, local_limit(ordered), blocks
        self.arrange()

    def limit_blocks(self) -> bool:
        """Whether some policy limit is 0 (the key admits nothing)."""
        return self.blocks

    def grant_rate(self, rate: float, until: int) -> None:
        """Admit at most ``rate`` hits/s (never more than the policy) until ``until``."""
        self.granted_until = until
        if rate != self.grant:
            self.grant = rate
            self.arrange()

    def end_grant(self) -> None:
        """Back to the policy lanes alone. A deal ends with it: its future given back unless
        the last answer during it said the fleet is over the policy."""
        if self.dealt is not None:
            over = self.dealt_heard == 2
            self.end_deal(None if over else self.granted_until, calm=self.dealt_heard == 1)
        self.granted_until = 0
        if not math.isinf(self.grant):
            self.grant = math.inf
            self.arrange()

    def deal(
        self, pace: pacing.Pace, earliest: int, until: int, expires: int, calm: dict[int, int]
    ) -> None:
        """Pace the strictest window by a dealt share (:mod:`ratekeeper.core.dealt`) from
        ``earliest``: an answer received from ``until`` on ends it (one within the policy notes
        the key in ``calm``), and so does the reporter's sweep at ``expires`` if none came (the
        share grows back to the local bucket: fail open). The grant's expiry is the sweep's
        cue, so a dealt key is never pruned."""
        self.dealt, self.dealt_until, self.granted_until = pace, until, expires
        self.dealt_heard, self.calm = 0, calm
        self.arrange()
        if self.lanes is None:
            self.earliest = earliest
        else:
            self.lanes[0].earliest = earliest
            self.earliest = max(lane.earliest for lane in self.lanes)

    def end_deal(self, relief_at: int | None, calm: bool = False) -> None:
        """Back to the policy (or granted) pace from where the deal stands; with ``relief_at``,
        nothing dealt later than that instant is still owed (the share grows back: the next hit
        is admitted, then the policy's pace refills the bucket), and with ``calm`` the key is
        noted calm as of then (a server said the fleet is within the policy)."""
        noted, self.calm = self.calm, None
        self.dealt, self.dealt_until = None, 0 if relief_at is not None else -1
        self.arrange()
        if noted is not None:
            if relief_at is None:
                noted.pop(self.key_hash, None)  # a rate ended it: over the policy after all
            elif calm:
                noted[self.key_hash] = relief_at
        if relief_at is not None:
            self.give_back(relief_at)

    def give_back(self, at: int) -> None:
        """Owe nothing the deal scheduled later than ``at`` (the next hit is admitted, then the
        policy's pace refills the bucket)."""
        self.dealt_until = 0
        if self.lanes is None:
            self.earliest = min(self.earliest, at)
        else:
            first = self.lanes[0]
            first.earliest = min(first.earliest, at)
            self.earliest = max(lane.earliest for lane in self.lanes)

    def reject_until(self, until: int) -> None:
        """Admit no hit before ``until`` (in every lane: none is ever forgiven)."""
        if self.lanes is None:
            self.earliest = pacing.reject_until(self.earliest, until)
            return
        for lane in self.lanes:
            lane.earliest = pacing.reject_until(lane.earliest, until)
        self.earliest = max(lane.earliest for lane in self.lanes)

    def rested(self, now: int) -> bool:
        """Whether a fresh state would decide exactly as this one does (so it may be dropped)."""
        if self.granted_until:
            return False
        if self.lanes is None:
            return self.earliest <= max(0, now - self.burst)
        return all(lane.earliest <= max(0, now - lane.pace.burst_ns) for lane in self.lanes)

    # --- arranging the lanes -------------------------------------------------------------------

    def arrange(self) -> None:
        """Rebuild the lanes from the limits and the grant, keeping each schedule's position.

        The first lane is the strictest window's policy pace, or the granted pace when the grant
        is at most the policy's rate (then :func:`~ratekeeper.core.pacing.granted_pace` is never
        looser than the policy, and the two share one schedule). A grant above the policy's rate
        gets a lane of its own instead: folding it into the policy lane would drop the policy's
        burst and pace the key at the policy's long-run rate, far below what was granted.
        """
        if self.lanes is None and len(self.limits) == 1 and self._arrange_single():
            return
        paces = [(lim, _policy_pace(lim)) for lim in self.limits]
        if any(pace is None for _, pace in paces):
            self._single(pacing.NEVER, FREE)  # a limit of 0 admits nothing
            return
        lanes: list[tuple[Limit | None, pacing.Pace]] = [
            (lim, pace) for lim, pace in paces if pace is not None
        ] or [(None, FREE)]
        first_limit, first = lanes[0]
        if self.dealt is not None:
            lanes[0] = (first_limit, self.dealt)
        elif not math.isinf(self.grant):
            emission = math.ceil(NS_PER_SECOND / self.grant)
            if emission < first.emission_ns:
                # the grant keeps the policy's burst (the policy lane still binds the total): a
                # burstless lane rejects Poisson traffic well within the grant
                burst = first.burst_ns
                lanes.append((None, pacing.Pace(emission, max(emission // 2, burst), burst)))
            else:
                lanes[0] = (first_limit, pacing.granted_pace(self.grant, first))
        before = self._positions()
        if len(lanes) == 1:
            self._single(before.get(_kind(lanes[0][0]), self.earliest), lanes[0][1])
            return
        first_earliest = before.get(_kind(first_limit), self._first_earliest())
        self.lanes = [Lane(before.get(_kind(lim), FRESH), pace, lim) for lim, pace in lanes]
        self.lanes[0].earliest = first_earliest
        self.pace = self.lanes[0].pace
        self.emission, self.tolerance, self.burst = AdmitAll(self.lanes), ALWAYS_RESTART, 0
        self.earliest = max(lane.earliest for lane in self.lanes)

    def _arrange_single(self) -> bool:
        """:meth:`arrange` for the common key, one lane under one limit, in the same steps
        without the general case's lists; False if the grant needs a lane of its own."""
        policy = _policy_pace(self.limits[0])
        if policy is None:
            self._single(pacing.NEVER, FREE)  # a limit of 0 admits nothing
        elif self.dealt is not None:
            self._single(self.earliest, self.dealt)  # no grant while dealt: see apply_instruction
        elif math.isinf(self.grant):
            self._single(self.earliest, policy)
        elif math.ceil(NS_PER_SECOND / self.grant) < policy.emission_ns:
            return False
        else:
            self._single(self.earliest, pacing.granted_pace(self.grant, policy))
        return True

    def _single(self, earliest: int, pace: pacing.Pace) -> None:
        self.lanes = None
        self.earliest, self.pace = earliest, pace
        self.emission, self.tolerance, self.burst = (
            pace.emission_ns,
            pace.tolerance_ns,
            pace.burst_ns,
        )

    def _positions(self) -> dict[object, int]:
        """Each current lane's ``earliest``, by what it enforces (a limit, or the grant)."""
        if self.lanes is None:
            return {}
        return {_kind(lane.limit): lane.earliest for lane in self.lanes}

    def _first_earliest(self) -> int:
        return self.earliest if self.lanes is None else self.lanes[0].earliest

    def _set_earliest(self, now: int) -> None:
        self.earliest = now
        for lane in self.lanes or ():
            lane.earliest = now


@functools.lru_cache(maxsize=4096)
def _policy_pace(limit: Limit) -> pacing.Pace | None:
    """The policy pace of ``limit``, one shared object per limit (keys share their limits)."""
    return pacing.policy_pace(limit)


def _kind(limit: Limit | None) -> object:
    """What a lane enforces, as a key matching it across rearrangements."""
    return "grant" if limit is None else limit


def apply_instruction(st: KeyState, instruction: Instruction, received_at: int) -> None:
    """Fold a server's instruction into ``st``; its durations run from ``received_at``.

    While a deal holds (:meth:`KeyState.deal`), an answer the fleet's first round may not have
    reached yet cannot end it with a looser rate: only a stricter one (or other limits) does, and
    a rejection period applies on top. An answer from ``dealt_until`` on ends it: within the
    policy, it gives the deal's future back (and the key is calm); with a rate or a rejection,
    the position stands until an answer within the policy gives it back. If none comes, the
    sweep ends the deal as its last answer said (none: the share grows back, fail open).
    """
    within = math.isinf(instruction.admit_rate) and not instruction.reject_for_ns
    if st.dealt is not None:
        if _keeps_deal(st, instruction, received_at):
            st.dealt_heard = 1 if within else 2
        else:
            st.end_deal(received_at if within else None, calm=within)
    elif st.dealt_until < 0 and within:
        st.give_back(received_at)  # over the policy at the deal's end, within it now
    if instruction.limits:
        st.set_limits(instruction.limits, received_at)
    rate = instruction.admit_rate
    valid_until = received_at + instruction.valid_for_ns
    if rate <= 0.0:
        st.reject_until(valid_until)
        st.instructed_until = max(st.instructed_until, valid_until)
    elif st.dealt is not None:
        # a rate no stricter than the deal's, heard during it: the deal binds, and holds (if no
        # later answer ends it) while this answer would have; a key with no hits since has none
        # to report, and no answer for it is no sign that its server is gone
        st.granted_until = max(st.granted_until, valid_until)
    elif not math.isinf(rate) and not st.limit_blocks():
        st.grant_rate(rate, valid_until)
        st.instructed_until = max(st.instructed_until, valid_until)
    elif st.granted_until:
        st.end_grant()
    if instruction.reject_for_ns:
        until = received_at + instruction.reject_for_ns
        st.reject_until(until)
        st.instructed_until = max(st.instructed_until, until)


def _keeps_deal(st: KeyState, instruction: Instruction, received_at: int) -> bool:
    """Whether ``instruction``, received during ``st``'s deal, leaves it in force."""
    dealt = st.dealt
    if dealt is None or received_at >= st.dealt_until:
        return False
    if instruction.limits and strictest_first(instruction.limits) != st.limits:
        return False
    rate = instruction.admit_rate
    return rate <= 0.0 or rate * dealt.emission_ns >= NS_PER_SECOND
