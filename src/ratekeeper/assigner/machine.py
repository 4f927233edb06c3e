"""The assigner as a passive state machine: heartbeats in, assignments out, time passed in.

Nothing here reads a clock, sleeps or does IO. A driver (:mod:`ratekeeper.assigner.server`)
feeds it heartbeats and runs a round when :meth:`~AssignerMachine.next_deadline` comes:
:meth:`~AssignerMachine.begin` takes the round's inputs, :meth:`Round.run` computes it (pure, so
anywhere, a worker thread say), :meth:`~AssignerMachine.finish` takes the result back, and the
driver publishes what it proposes; :meth:`~AssignerMachine.step` does the three in one call.
Times are integer nanoseconds on the driver's monotonic clock.

The rules:

* A member is alive while its last heartbeat is at most ``unhealthy_after`` old; a silent one is
  dropped. RUNNING members may own slices; NOT_READY and TERMINATING ones get none.
* When a member that owned slices may no longer own any (it died, drains, stopped being ready
  or restarted at the same address), a new assignment is proposed at once: its slices are
  reassigned on the next step, never later. A join is assigned ``join_batch`` after it was
  seen, together with every join seen meanwhile, so members started together cause one
  hand-off wave, not one each.
* Load is what the live members last reported per slice; a member that died or was replaced
  since the last round still counts with its last report, so its slices are spread by what
  they carried rather than taken as idle and handed whole to one survivor.
* Otherwise a round for load runs every ``load_interval`` and never sooner than ``min_interval``
  after the last published assignment (the rebalancer's churn penalty limits what each moves).
* Publishing is two-phase, the seam for a durable, leader-elected assigner: a round returns
  a proposal, the driver persists it where it must, then :meth:`commit` (or :meth:`abandon`).
  Each committed assignment's generation is higher than every one before it.

A fresh cluster's first assignment is an even split, ``settle`` after the machine was created.
A restarted assigner instead starts from the assignment the members say they hold
(:mod:`ratekeeper.assigner.recovery`), so restarting it moves no key. It waits until their
reports rebuild all of that assignment, or for ``unhealthy_after`` after the first of them at
most, since by then any member it has not heard from counts as dead. Started with an
assignment (a successor taking over), it presumes that assignment's owners alive and RUNNING
until they time out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from ratekeeper.assigner.members import Heartbeat, LoadReport, Member, MemberState, next_state
from ratekeeper.assigner.recovery import NOBODY, newest_known, recovered
from ratekeeper.assigner.settings import MachineSettings
from ratekeeper.core.assignment import next_generation
from ratekeeper.core.assignment_diff import Update, update_for
from ratekeeper.core.rebalance import rebalance
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.rebalance_settings import RebalanceSettings
from ratekeeper.core.slices import Assignment, Generation, even_split

__all__ = ["Accepted", "AssignerMachine", "Round"]

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


@dataclass(frozen=True, slots=True)
class Round:
    """One round's inputs, as :meth:`AssignerMachine.begin` took them from the machine.

    :meth:`run` is pure and touches nothing of the machine, so a driver may run it on a worker
    thread while the machine goes on taking heartbeats (a round over thousands of slices takes
    long enough to delay them otherwise).
    """

    #: The assignment the round starts from; ``None`` for the first one.
    current: Assignment | None
    #: The members that may own slices.
    running: frozenset[str]
    #: Every load report the round prices slices by.
    load: tuple[LoadReport, ...]
    #: The rebalancing knobs.
    settings: RebalanceSettings
    #: The generation of the assignment it makes.
    generation: Generation
    #: The first round of this assigner: ``current`` (rebuilt from the members' reports) is
    #: proposed under ``generation`` even if the round changes nothing in it.
    first: bool = False

    def run(self) -> Assignment | None:
        """The proposed assignment; ``None`` when it would change nothing."""
        if self.current is None:
            return even_split(sorted(self.running), self.generation)
        load = LoadMap.of(entry for report in self.load for entry in report)
        outcome = rebalance(self.current, self.running, load, self.settings, self.generation)
        if outcome.assignment is not self.current:
            return outcome.assignment
        if self.first:
            return Assignment(self.generation, self.current.starts, self.current.owners)
        return None


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
        #: The last load of members dropped or replaced since the last round, by address.
        self._departed: dict[str, LoadReport] = {}
        #: The departed loads the round in progress (or its proposal) priced.
        self._priced: dict[str, LoadReport] = {}
        #: The round being computed, between :meth:`begin` and :meth:`finish`.
        self._computing: Round | None = None
        self._current: Assignment | None = None
        self._history: OrderedDict[Generation, Assignment] = OrderedDict()
        self._pending: Assignment | None = None
        #: The RUNNING set the last round saw: a different one is a membership change.
        self._round_members: frozenset[str] = frozenset()
        self._settled_at = now + settings.settle_ns
        #: Before the first assignment: a member holding one that has not heartbeated by then
        #: is dead anyway (set by the first heartbeat from a member holding one).
        self._recover_by: int | None = None
        self._last_round_ns: int | None = None
        self._last_commit_ns: int | None = None
        self._forced = False
        #: When the first join not yet in a round was seen (ns).
        self._join_seen_at: int | None = None
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

    def load_reports(self) -> tuple[LoadReport, ...]:
        """Every load report the next round prices slices by: each live member's last, and the
        last of members gone since the last round (so their slices are priced by what they
        carried when they are reassigned, not as if they were idle)."""
        live = tuple(m.load for m in self._members.values())
        return (*live, *self._departed.values(), *self._priced.values())

    def load(self) -> LoadMap:
        """:meth:`load_reports` summed over the hash space."""
        return LoadMap.of(entry for report in self.load_reports() for entry in report)

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
        due = self._round_due()
        if due is not None:
            times.append(due)
        return min(times, default=None)

    # --- events -----------------------------------------------------------------------------

    def heartbeat(self, beat: Heartbeat, now: int) -> Accepted:
        """Record ``beat``, received at ``now``; the next round (see :meth:`next_deadline`) acts
        on it."""
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
        if self._current is None and beat.known is not None and self._recover_by is None:
            # counted from the first member heard, not from our start: members reconnecting
            # to a restarted assigner are heard late, but each within the timeout of the others
            self._recover_by = now + self.settings.unhealthy_after_ns
        state = beat.state if old is None else next_state(old.state, beat.state)
        joins = state is MemberState.RUNNING and beat.address not in self._round_members
        if joins and self._join_seen_at is None:
            self._join_seen_at = now
        self._members[beat.address] = Member(
            beat.address, state, beat.incarnation_id, now, beat.known, beat.load
        )
        return Accepted.OK

    def step(self, now: int) -> Assignment | None:
        """Drop dead members and propose the next assignment if one is due (else ``None``):
        :meth:`begin`, :meth:`Round.run` and :meth:`finish` in one call.

        A proposal must be answered with :meth:`commit` or :meth:`abandon` before another is
        made.
        """
        job = self.begin(now)
        return None if job is None else self.finish(job, job.run())

    def begin(self, now: int) -> Round | None:
        """Drop dead members and, if a round is due, start it: its inputs, to run and then
        hand to :meth:`finish`. Heartbeats may be taken meanwhile; no other round starts."""
        self._expire(now)
        due = self._round_due()
        if due is None or now < due:
            return None
        current = self._current
        first = current is None
        if current is None:
            newest = newest_known(self._members.values())
            if newest is not None and newest.incarnation >= self.incarnation:
                # members hold a generation of a later incarnation (a wall clock stepped back
                # between two starts): ours must outrank it, or they would never adopt ours
                self.incarnation = newest.incarnation + 1
            current = recovered(self._members.values())
            generation = next_generation(Generation(self.incarnation))
        else:
            generation = self._next_generation(current.generation)
        settings = self.settings.rebalance
        if first:
            # place what has no live owner and fill new members, but balance nothing yet: the
            # restart of an assigner is no reason to move keys (load rounds follow as usual)
            settings = dataclasses.replace(settings, max_moved_fraction=0.0)
        self._priced, self._departed = {**self._priced, **self._departed}, {}
        job = Round(current, self.running(), self.load_reports(), settings, generation, first)
        self._forced = False
        self._join_seen_at = None
        self._round_members = job.running
        self._last_round_ns = now
        self._computing = job
        return job

    def finish(self, job: Round, proposal: Assignment | None) -> Assignment | None:
        """End the round ``job`` with what it computed; the proposal to persist, if any."""
        if job is not self._computing:
            raise ValueError("only the round in progress can be finished")
        self._computing = None
        if proposal is None:
            self._priced = {}  # the round priced them; nothing of theirs moved
        self._pending = proposal
        return proposal

    def commit(self, assignment: Assignment, now: int) -> None:
        """Publish the proposal ``assignment`` (persisted, where the driver must persist)."""
        if assignment is not self._pending:
            raise ValueError("only the pending proposal can be committed")
        self._pending = None
        self._priced = {}  # their slices are placed; the new owners report them now
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

    def _round_due(self) -> int | None:
        """When the next round is due (ns; ``0``: at once), ``None`` while none can run."""
        running = self.running()
        if self._pending is not None or self._computing is not None or not running:
            return None
        if self._current is None:
            due = self._first_due()
        elif self._forced or self._round_members - running:
            due = 0  # a member lost its right to slices: they move now
        elif running - self._round_members:
            # joins share a round, one batch window after the first of them was seen: members
            # started together cause one hand-off wave, not one each
            due = (self._join_seen_at or 0) + self.settings.join_batch_ns
        else:
            due = self._load_round_at()
        return max(due, self._not_before)

    def _first_due(self) -> int:
        """When the first assignment is due: after the settle time for a fresh cluster, or once
        the members' reports rebuild the whole assignment they hold (after a restart of the
        assigner), at the latest when any member not heard from by then counts as dead."""
        if newest_known(self._members.values()) is None:
            return self._settled_at
        rebuilt = recovered(self._members.values())
        if rebuilt is not None and NOBODY not in rebuilt.owners:
            return self._settled_at
        return max(self._settled_at, self._recover_by or 0)

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
