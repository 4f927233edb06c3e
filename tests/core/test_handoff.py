"""The hand-off machine: sends with retries and a deadline, cold ranges until their transfer,
retargeting, early transfers; and, over random assignment histories among several members, that
every range handed off between live members ends warm and nothing stays pending."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.handoff import HandoffMachine
from ratekeeper.core.handoff_actions import (
    Action,
    Drop,
    HandoffTimings,
    Lost,
    Release,
    Send,
    SendLate,
    StartEmpty,
    Warm,
    minus,
    overlap,
)
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split

from .strategies import THOROUGH

MS = 1_000_000
T = HandoffTimings(timeout_ns=1_000 * MS, first_retry_ns=10 * MS, max_retry_ns=100 * MS)
HALF = HASH_SPACE // 2
LOW, HIGH = Slice(0, HALF), Slice(HALF, HASH_SPACE)
G1, G2, G3 = Generation(1, 1), Generation(1, 2), Generation(1, 3)


def assign(generation: Generation, *owners: str) -> Assignment:
    return even_split(owners, generation)


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def test_the_first_assignment_moves_nothing() -> None:
    machine = HandoffMachine("a", T)
    assert machine.assignment_changed(None, assign(G1, "a", "b"), 0) == []
    assert machine.wake_at() is None


def test_a_range_moved_away_is_sent_at_once_and_released_when_confirmed() -> None:
    machine = HandoffMachine("a", T)
    actions = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 100)
    [send] = actions
    assert send == Send(HIGH, "b", G2, send.token, 100 + T.timeout_ns)
    assert machine.outgoing == (HIGH,)
    assert machine.poll(200) == []  # in flight: not sent twice
    assert machine.sent(send.token, 300) == [Release(HIGH, True, 100, 300)]
    assert machine.outgoing == ()
    assert machine.sent(send.token, 301) == []  # a duplicate confirmation is ignored


def test_failed_sends_back_off_then_give_up_at_the_deadline() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    now, waits = 0, []
    while True:
        released = machine.failed(send.token, now)
        if released:
            break
        wake = machine.wake_at()
        assert wake is not None
        waits.append(wake - now)
        assert machine.poll(wake - 1) == []
        [send] = sends(machine.poll(wake))
        now = wake
    assert waits[:5] == [10 * MS, 20 * MS, 40 * MS, 80 * MS, 100 * MS]
    assert released == [Release(HIGH, False, 0, now)]
    assert now < T.timeout_ns
    assert now + 100 * MS >= T.timeout_ns
    assert machine.outgoing == ()


def test_a_gained_range_is_cold_until_its_transfer_is_complete() -> None:
    machine = HandoffMachine("b", T)
    actions = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 100)
    assert actions == [StartEmpty(HIGH, 100)]
    assert machine.incoming == (HIGH,)
    assert machine.received("a", HIGH, G2, 1, 2, 150) == []  # one chunk of two
    assert machine.received("a", HIGH, G2, 1, 2, 151) == []  # a resent chunk counts once
    assert machine.received("a", HIGH, G2, 0, 2, 160) == [Warm(HIGH, 100)]
    assert machine.incoming == ()
    assert machine.wake_at() is None


def test_a_range_with_no_transfer_by_its_deadline_is_lost() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    assert machine.wake_at() == T.timeout_ns
    assert machine.poll(T.timeout_ns - 1) == []
    assert machine.poll(T.timeout_ns) == [Lost(HIGH, 0)]
    assert machine.incoming == ()
    # A transfer arriving late still makes the range warm: it is the old owner's state.
    assert machine.received("a", HIGH, G2, 0, 1, T.timeout_ns + 5) == [Warm(HIGH, None)]


def test_a_transfer_that_arrives_before_the_assignment_is_remembered() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(None, assign(G1, "a", "a"), 0)
    assert machine.received("a", HIGH, G2, 0, 1, 10) == []
    assert machine.wake_at() == 10 + T.timeout_ns
    # The range is not cold at all: its counters are already here.
    assert machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 20) == []
    assert machine.incoming == ()


def test_an_early_transfer_is_forgotten_after_the_timeout() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(None, assign(G1, "a", "a"), 0)
    machine.received("a", HIGH, G2, 0, 1, 0)
    assert machine.poll(T.timeout_ns) == []
    assert machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), T.timeout_ns) == [
        StartEmpty(HIGH, T.timeout_ns)
    ]


def test_a_pending_send_follows_the_range_to_its_next_owner() -> None:
    machine = HandoffMachine("a", T)
    [first] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    [again] = machine.assignment_changed(assign(G2, "a", "b"), assign(G3, "a", "c"), 50)
    assert (again.slice, again.target, again.generation) == (HIGH, "c", G3)
    assert machine.sent(first.token, 60) == []  # the stale send is no longer pending
    assert machine.sent(again.token, 70) == [Release(HIGH, True, 0, 70)]


def test_a_pending_send_is_cancelled_when_the_range_comes_back() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    machine.assignment_changed(assign(G2, "a", "b"), assign(G3, "a", "a"), 50)
    assert machine.outgoing == ()
    assert machine.failed(send.token, 60) == []


def test_a_range_gained_and_moved_on_is_no_longer_waited_for() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    [send] = machine.assignment_changed(assign(G2, "a", "b"), assign(G3, "a", "c"), 10)
    assert (send.slice, send.target) == (HIGH, "c")
    assert machine.incoming == ()


def test_overlap_and_minus() -> None:
    a = Slice(10, 20)
    assert overlap(a, Slice(15, 30)) == Slice(15, 20)
    assert overlap(a, Slice(20, 30)) is None
    assert minus(a, Slice(12, 14)) == [Slice(10, 12), Slice(14, 20)]
    assert minus(a, Slice(0, 30)) == []
    assert minus(a, Slice(30, 40)) == [a]


# --- many members, random histories --------------------------------------------------------

MEMBERS = ("a", "b", "c")
cut_points = st.integers(1, 7).map(lambda i: i * (HASH_SPACE // 8)) | st.integers(1, HASH_SPACE - 1)


@st.composite
def assignments(draw: st.DrawFn, number: int) -> Assignment:
    cuts = draw(st.lists(cut_points, max_size=5, unique=True))
    starts = (0, *sorted(cuts))
    return Assignment(
        Generation(1, number), starts, tuple(draw(st.sampled_from(MEMBERS)) for _ in starts)
    )


@st.composite
def histories(draw: st.DrawFn) -> list[Assignment]:
    return [draw(assignments(n)) for n in range(draw(st.integers(2, 6)))]


class Fleet:
    """One machine per member; actions performed at once, sends delivered at once."""

    def __init__(self, rng: random.Random) -> None:
        self.machines = {m: HandoffMachine(m, T) for m in MEMBERS}
        self.cold: dict[str, list[Slice]] = {m: [] for m in MEMBERS}
        self.rng = rng

    def perform(self, member: str, actions: list[Action], now: int) -> None:
        for action in actions:
            if isinstance(action, StartEmpty):
                self.cold[member].append(action.slice)
            elif isinstance(action, Warm):
                self.cold[member] = [
                    rest for piece in self.cold[member] for rest in minus(piece, action.slice)
                ]
            elif isinstance(action, Send):
                target = self.machines[action.target]
                got = target.received(member, action.slice, action.generation, 0, 1, now)
                self.perform(action.target, got, now)
                self.perform(member, self.machines[member].sent(action.token, now), now)

    def change(self, before: Assignment | None, after: Assignment, now: int) -> None:
        order = list(MEMBERS)
        self.rng.shuffle(order)  # members learn of the change in any order
        for member in order:
            self.perform(member, self.machines[member].assignment_changed(before, after, now), now)


@THOROUGH
@given(histories(), st.randoms(use_true_random=False))
def test_between_live_members_every_hand_off_completes_and_ends_warm(
    history: list[Assignment], rng: random.Random
) -> None:
    fleet = Fleet(rng)
    before: Assignment | None = None
    for step, after in enumerate(history):
        fleet.change(before, after, step * MS)
        before = after
    for member, machine in fleet.machines.items():
        assert machine.outgoing == (), member
        assert machine.incoming == (), member
        assert fleet.cold[member] == [], member


@THOROUGH
@given(histories())
def test_ranges_gained_from_a_dead_member_stay_cold_and_are_lost(history: list[Assignment]) -> None:
    # "a" never answers: whatever it held and loses is gained without a hand-off.
    survivors = {m: HandoffMachine(m, T) for m in ("b", "c")}
    cold: dict[str, set[Slice]] = {m: set() for m in survivors}
    before: Assignment | None = None
    for after in history:
        for member, machine in survivors.items():
            for action in machine.assignment_changed(before, after, 0):
                if isinstance(action, StartEmpty):
                    cold[member].add(action.slice)
        before = after
    for member, machine in survivors.items():
        lost = {a.slice for a in machine.poll(T.timeout_ns) if isinstance(a, Lost)}
        # Every range still waited for at the end is lost, and it was started empty.
        assert all(any(overlap(piece, c) == piece for c in cold[member]) for piece in lost)


def test_a_transfer_left_incomplete_is_forgotten_after_the_timeout() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    assert machine.received("a", HIGH, G2, 0, 2, 10) == []  # the sender gave up after one
    assert machine.poll(10 + T.timeout_ns) == [Lost(HIGH, 0)]
    assert machine.wake_at() is None


def test_a_first_assignment_of_a_running_assigner_gains_its_slices_cold() -> None:
    # A process restarted at its old address may first hear the assignment its predecessor
    # held: those slices' counters died with it, so they start empty unless a transfer comes.
    machine = HandoffMachine("b", T)
    assert machine.assignment_changed(None, assign(G3, "a", "b"), 7) == [StartEmpty(HIGH, 7)]
    assert machine.incoming == (HIGH,)
    assert machine.poll(7 + T.timeout_ns) == [Lost(HIGH, 7)]
    # An assigner's first assignment (a cluster starting) gives slices nobody held: full.
    assert HandoffMachine("b", T).assignment_changed(None, assign(G1, "a", "b"), 7) == []


def test_what_was_cold_on_the_sender_stays_cold_here() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 100)
    lost = Slice(HALF, HALF + 1000)
    got = machine.received("a", HIGH, G2, 0, 1, 200, ((lost, 50),))
    assert got == [Warm(HIGH, 100), StartEmpty(lost, 50)]  # the cold mark after the lift


def test_an_early_transfer_keeps_its_cold_parts_until_the_range_is_gained() -> None:
    machine = HandoffMachine("b", T)
    machine.assignment_changed(None, assign(G1, "a", "a"), 0)
    lost = Slice(HALF + 10, HALF + 20)
    assert machine.received("a", HIGH, G2, 0, 1, 10, ((lost, 5),)) == []
    assert machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 20) == [
        StartEmpty(lost, 5)
    ]
    assert machine.incoming == ()


def test_late_counters_are_passed_on_until_a_pass_finds_none() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    machine.sent(send.token, 10)
    assert machine.late == (HIGH,)
    assert machine.wake_at() == 10 + T.linger_ns
    [late] = machine.poll(10 + T.linger_ns)
    assert late == SendLate(HIGH, "b", G2, late.token, 10 + T.linger_ns + T.timeout_ns)
    assert machine.late_sent(late.token, 3, 600 * MS) == [Drop(HIGH)]  # some came: again later
    [late] = machine.poll(600 * MS + T.linger_ns)
    assert machine.late_sent(late.token, 0, 1200 * MS) == []  # none: done
    assert machine.late == ()
    assert machine.wake_at() is None


def test_late_passes_are_bounded_and_not_retried() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    machine.sent(send.token, 0)
    now = 0
    for _ in range(T.late_passes):
        now += T.linger_ns
        [late] = machine.poll(now)
        assert machine.late_sent(late.token, 1, now) == [Drop(HIGH)]
    assert machine.late == ()
    machine.sent(send.token, 0)  # a stale confirmation starts nothing
    assert machine.late == ()


def test_a_failed_late_pass_drops_its_counters() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    machine.sent(send.token, 0)
    [late] = machine.poll(T.linger_ns)
    assert machine.failed(late.token, T.linger_ns) == [Drop(HIGH)]
    assert machine.late == ()


def test_late_passes_stop_when_the_range_moves_on() -> None:
    machine = HandoffMachine("a", T)
    [send] = machine.assignment_changed(assign(G1, "a", "a"), assign(G2, "a", "b"), 0)
    machine.sent(send.token, 0)
    machine.assignment_changed(assign(G2, "a", "b"), assign(G3, "a", "c"), 1)
    assert machine.late == ()
