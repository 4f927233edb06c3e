"""The assigner as a passive state machine: heartbeats in, assignments out, time passed in.

Nothing here reads a clock, sleeps or does IO; a driver (:mod:`ratekeeper.assigner.server`)
feeds it heartbeats, calls :meth:`AssignerMachine.step` when :meth:`~AssignerMachine.next_deadline`
comes or after a heartbeat, and publishes what it proposes. Times are integer nanoseconds on the
driver's monotonic clock.

The rules:

* A member is alive while its last heartbeat is at most ``unhealthy_after`` old; a silent one is
  dropped. RUNNING members may own slices; NOT_READY and TERMINATING ones get none.
* When the set of RUNNING members changes (a join, a leave, a death, a drain, a restart at the
  same address) a new assignment is proposed at once: the slices of a member that may not own
  any are reassigned on the next step, never later.
* Load is what the live members last reported per slice; a member that died or was replaced
  since the last commit still counts with its last report, so its slices are spread by what
  they carried rather than taken as idle and handed whole to one survivor.
* Otherwise a round for load runs every ``load_interval`` and never sooner than ``min_interval``
  after the last published assignment (the rebalancer's churn penalty limits what each moves).
* Publishing is two-phase, the seam for a durable, leader-elected assigner: :meth:`step` returns
  a proposal, the driver persists it where it must, then :meth:`commit` (or :meth:`abandon`).
  Each committed assignment's generation is higher than every one before it.

Until the first assignment, the machine waits ``settle`` after it was created, so that a
restarted assigner hears from every live member before cutting the space. Started with an
assignment (a successor taking over), it presumes that assignment's owners alive and RUNNING
until they time out.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping

from ratekeeper.assigner.members import Heartbeat, Member, MemberState, next_state
from ratekeeper.assigner.settings import MachineSettings
from ratekeeper.core.assignment import next_generation
from ratekeeper.core.assignment_diff import Update, update_for
from ratekeeper.core.rebalance import rebalance
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import Assignment, Generation, Slice, even_split

__all__ = ["Accepted", "AssignerMachine"]

#: Incarnation ids remembered per address once replaced, to refuse their late heartbeats.
_RETIRED_PER_ADDRESS = 4


class Accepted(enum.Enum):
    """What became of a heartbeat."""

    #: Recorded.
    OK = "ok"
    #: From a process that a newer incarnation at the same address has replaced: ignored.
    STALE = "stale"
    #: A new member while ``max_members`` are alive: refused.
    FULL = "full"


class AssignerMachine:
    """Membership and the assignment of one assigner incarnation (see the module docstring)."""

    def __init__(
        self,
        settings: MachineSettings,
        incarnation: int,
        now: int,
        start: Assignment | None = None,
    ) -> None:
        if start is not None and start.generation.incarnation > incarnation:
            raise ValueError(
                f"incarnation {incarnation} is older than the starting assignment's "
                f"{start.generation.incarnation}"
            )
        self.settings = settings
        #: This assigner's incarnation: the first half of every generation it makes.
        self.incarnation = incarnation
        self._members: dict[str, Member] = {}
        self._retired: dict[str, tuple[str, ...]] = {}
        #: The last load of members dropped or replaced since the last commit, by address.
        self._departed: dict[str, tuple[tuple[Slice, float], ...]] = {}
        self._current: Assignment | None = None
        self._history: OrderedDict[Generation, Assignment] = OrderedDict()
        self._pending: Assignment | None = None
        #: The RUNNING set the last round saw: a different one is a membership change.
        self._round_members: frozenset[str] = frozenset()
        self._settled_at = now + settings.settle_ns
        self._last_round_ns: int | None = None
        self._last_commit_ns: int | None = None
        self._forced = False
        #: No round before this (ns): a proposal that could not be persisted is retried later.
        self._not_before = now
        if start is not None:
            self._publish(start, now)
            self._settled_at = now
            self._last_round_ns = now
            self._round_members = start.servers
            for address in sorted(start.servers):
                # presumed alive until it has had the full timeout to say otherwise
                self._members[address] = Member(address, MemberState.RUNNING, "", now, None, ())

    # --- what the driver reads --------------------------------------------------------------

    @property
    def current(self) -> Assignment | None:
        """The latest committed assignment (``None`` before the first)."""
        return self._current

    @property
    def history(self) -> Mapping[Generation, Assignment]:
        """Recent committed assignments by generation, oldest first, bounded."""
        return self._history

    @property
    def members(self) -> tuple[Member, ...]:
        """The live members, by address."""
        return tuple(self._members[a] for a in sorted(self._members))

    def running(self) -> frozenset[str]:
        """The members that may own slices."""
        return frozenset(a for a, m in self._members.items() if m.state is MemberState.RUNNING)

    def load(self) -> LoadMap:
        """The load over the hash space, summed from every live member's last heartbeat and
        the last report of members gone since the last commit (so their slices are priced by
        what they carried when they are reassigned, not as if they were idle)."""
        live = (entry for m in self._members.values() for entry in m.load)
        gone = (entry for load in self._departed.values() for entry in load)
        return LoadMap.of((*live, *gone))

    def update_for(self, known: Generation | None) -> Update | None:
        """What to send a party holding ``known``: ``None`` if it is up to date or ahead."""
        current = self._current
        if current is None or (known is not None and known >= current.generation):
            return None
        return update_for(known, current, self._history)

    def next_deadline(self) -> int | None:
        """When :meth:`step` next has work (ns; at or before now: at once), ``None``: never."""
        times: list[int] = [
            m.last_heartbeat_ns + self.settings.unhealthy_after_ns + 1
            for m in self._members.values()
        ]
        if self._pending is None and self.running():
            if self._current is None:
                due = self._settled_at
            elif self._forced or self.running() != self._round_members:
                due = self._last_round_ns or 0
            else:
                due = self._load_round_at()
            times.append(max(due, self._not_before))
        return min(times, default=None)

    # --- events -----------------------------------------------------------------------------

    def heartbeat(self, beat: Heartbeat, now: int) -> Accepted:
        """Record ``beat``, received at ``now``; call :meth:`step` next to act on it."""
        if beat.incarnation_id in self._retired.get(beat.address, ()):
            return Accepted.STALE
        old = self._members.get(beat.address)
        if old is None and len(self._members) >= self.settings.max_members:
            return Accepted.FULL
        if old is not None and old.incarnation_id not in ("", beat.incarnation_id):
            # the process at this address restarted: the old one is gone, whatever it said
            retired = (*self._retired.get(beat.address, ()), old.incarnation_id)
            self._retired[beat.address] = retired[-_RETIRED_PER_ADDRESS:]
            self._departed[beat.address] = old.load
            self._forced = True
            old = None
        state = beat.state if old is None else next_state(old.state, beat.state)
        self._members[beat.address] = Member(
            beat.address, state, beat.incarnation_id, now, beat.known, beat.load
        )
        return Accepted.OK

    def step(self, now: int) -> Assignment | None:
        """Drop dead members and propose the next assignment if one is due (else ``None``).

        A proposal must be answered with :meth:`commit` or :meth:`abandon` before another is
        made.
        """
        self._expire(now)
        running = self.running()
        if self._pending is not None or not running or now < self._not_before:
            return None
        current = self._current
        proposal: Assignment | None
        if current is None:
            if now < self._settled_at:
                return None
            proposal = even_split(sorted(running), next_generation(Generation(self.incarnation)))
        else:
            changed = self._forced or running != self._round_members
            if not changed and now < self._load_round_at():
                return None
            outcome = rebalance(
                current,
                running,
                self.load(),
                self.settings.rebalance,
                self._next_generation(current.generation),
            )
            proposal = None if outcome.assignment is current else outcome.assignment
            if proposal is None:
                self._departed.clear()  # the round priced them; nothing of theirs moved
        self._forced = False
        self._round_members = running
        self._last_round_ns = now
        self._pending = proposal
        return proposal

    def commit(self, assignment: Assignment, now: int) -> None:
        """Publish the proposal ``assignment`` (persisted, where the driver must persist)."""
        if assignment is not self._pending:
            raise ValueError("only the pending proposal can be committed")
        self._pending = None
        self._departed.clear()  # their slices are placed; the new owners report them now
        self._publish(assignment, now)

    def abandon(self, now: int) -> None:
        """Drop the pending proposal (it could not be persisted); the round is tried again one
        heartbeat interval later."""
        self._pending = None
        self._forced = True
        self._last_round_ns = now
        self._not_before = now + self.settings.heartbeat_interval_ns

    # --- inside -----------------------------------------------------------------------------

    def _expire(self, now: int) -> None:
        limit = self.settings.unhealthy_after_ns
        for address in [a for a, m in self._members.items() if now - m.last_heartbeat_ns > limit]:
            self._departed[address] = self._members.pop(address).load

    def _load_round_at(self) -> int:
        settings = self.settings.rebalance
        last_round = self._last_round_ns or 0
        last_commit = self._last_commit_ns or 0
        return max(last_round + settings.load_interval_ns, last_commit + settings.min_interval_ns)

    def _next_generation(self, generation: Generation) -> Generation:
        if generation.incarnation == self.incarnation:
            return next_generation(generation)
        return next_generation(Generation(self.incarnation))

    def _publish(self, assignment: Assignment, now: int) -> None:
        self._current = assignment
        self._last_commit_ns = now
        self._history[assignment.generation] = assignment
        while len(self._history) > self.settings.history:
            self._history.popitem(last=False)
