"""The assigner's machine: examples, then properties over random membership histories."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.assigner.machine import Accepted, AssignerMachine
from ratekeeper.assigner.members import Heartbeat, MemberState
from ratekeeper.assigner.settings import MachineSettings
from ratekeeper.core.assignment import next_generation, pieces
from ratekeeper.core.assignment_diff import AssignmentDiff, apply_update
from ratekeeper.core.rebalance import server_loads
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.rebalance_settings import RebalanceSettings
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split

MS = 1_000_000
S = 1000 * MS
RUNNING, NOT_READY, TERMINATING = (
    MemberState.RUNNING,
    MemberState.NOT_READY,
    MemberState.TERMINATING,
)
SETTINGS = MachineSettings(
    heartbeat_interval_ns=100 * MS,
    unhealthy_after_ns=300 * MS,
    settle_ns=100 * MS,
    join_batch_ns=100 * MS,
    rebalance=RebalanceSettings(min_interval_ns=1 * S, load_interval_ns=5 * S),
    history=4,
)
#: CPU-bound and deterministic; sized to stay a few seconds on a shared two-core machine.
THOROUGH = settings(max_examples=100, deadline=None)


def beat(address: str, state: MemberState = RUNNING, inc: str = "1", **kw: object) -> Heartbeat:
    return Heartbeat(address, state, f"{address}#{inc}", **kw)  # type: ignore[arg-type]


def run(machine: AssignerMachine, now: int) -> Assignment | None:
    """What the driver does: step, and commit what is proposed."""
    proposal = machine.step(now)
    if proposal is not None:
        machine.commit(proposal, now)
    return proposal


def started(*addresses: str, now: int = 0) -> AssignerMachine:
    machine = AssignerMachine(SETTINGS, incarnation=7, now=now)
    for a in addresses:
        machine.heartbeat(beat(a), now)
    assert run(machine, now + SETTINGS.settle_ns) is not None
    return machine


def test_the_first_assignment_waits_for_the_settle_time_then_splits_evenly() -> None:
    machine = AssignerMachine(SETTINGS, incarnation=7, now=0)
    machine.heartbeat(beat("a"), 0)
    machine.heartbeat(beat("b"), 10 * MS)
    assert machine.next_deadline() == 100 * MS
    assert run(machine, 50 * MS) is None
    first = run(machine, 100 * MS)
    assert first == even_split(["a", "b"], Generation(7, 1))
    assert machine.current is first


def test_no_running_member_means_no_assignment() -> None:
    machine = AssignerMachine(SETTINGS, incarnation=1, now=0)
    machine.heartbeat(beat("a", NOT_READY), 0)
    assert run(machine, 200 * MS) is None
    assert machine.current is None
    machine.heartbeat(beat("a", RUNNING), 250 * MS)
    assert machine.next_deadline() == 100 * MS  # due at once
    assert run(machine, 250 * MS) == even_split(["a"], Generation(1, 1))


def test_joins_share_a_round_and_a_silent_member_loses_its_slices_on_time() -> None:
    machine = started("a", "b")  # committed at 100 ms
    machine.heartbeat(beat("a"), 150 * MS)
    machine.heartbeat(beat("b"), 150 * MS)
    machine.heartbeat(beat("c"), 150 * MS)
    machine.heartbeat(beat("d"), 200 * MS)
    assert run(machine, 200 * MS) is None  # within the batch window of c's join
    assert machine.next_deadline() == 250 * MS
    machine.heartbeat(beat("b"), 250 * MS)
    machine.heartbeat(beat("c"), 250 * MS)
    machine.heartbeat(beat("d"), 250 * MS)
    joined = run(machine, 250 * MS)
    assert joined is not None
    assert joined.servers == {"a", "b", "c", "d"}  # c and d in one round
    assert joined.generation == Generation(7, 2)
    machine.heartbeat(beat("d", TERMINATING), 260 * MS)
    assert run(machine, 260 * MS) is not None  # d drains: at once
    # b and c keep heartbeating, a goes silent: dead once 300 ms have passed since 150 ms
    for t in (350, 450):
        machine.heartbeat(beat("b"), t * MS)
        machine.heartbeat(beat("c"), t * MS)
        assert run(machine, t * MS) is None
    assert machine.next_deadline() == 450 * MS + 1
    left = run(machine, 450 * MS + 1)
    assert left is not None
    assert left.servers == {"b", "c"}
    assert machine.running() == {"b", "c"}  # d is still draining, a is gone
    assert [m.address for m in machine.members] == ["b", "c", "d"]


def test_a_terminating_member_is_drained_at_once_and_cannot_come_back_to_work() -> None:
    machine = started("a", "b")
    machine.heartbeat(beat("b", TERMINATING), 150 * MS)
    drained = run(machine, 150 * MS)
    assert drained is not None
    assert drained.servers == {"a"}
    machine.heartbeat(beat("b", RUNNING), 160 * MS)  # a confused heartbeat: still draining
    assert run(machine, 160 * MS) is None
    assert {m.address: m.state for m in machine.members}["b"] is TERMINATING


def test_a_restarted_member_is_a_new_one_and_its_old_process_is_not_heard() -> None:
    machine = started("a", "b")
    machine.heartbeat(beat("b", NOT_READY, inc="2"), 150 * MS)
    while_starting = run(machine, 150 * MS)
    assert while_starting is not None
    assert while_starting.servers == {"a"}
    assert machine.heartbeat(beat("b", RUNNING, inc="1"), 160 * MS) is Accepted.STALE
    assert run(machine, 160 * MS) is None
    machine.heartbeat(beat("b", RUNNING, inc="2"), 170 * MS)
    assert run(machine, 170 * MS) is None  # a join: it waits out the batch window
    back = run(machine, 270 * MS)
    assert back is not None
    assert back.servers == {"a", "b"}


def test_load_rounds_wait_for_the_load_interval_and_the_floor() -> None:
    machine = started("a", "b")  # committed at 100 ms
    hot = ((Slice(0, HASH_SPACE // 2), 1000.0), (Slice(HASH_SPACE // 2, HASH_SPACE), 10.0))
    t = 100 * MS
    while t < 5 * S + 100 * MS:
        t += 100 * MS
        machine.heartbeat(beat("a", load=hot[:1]), t)
        machine.heartbeat(beat("b", load=hot[1:]), t)
        if t < 5 * S + 100 * MS:
            assert run(machine, t) is None, t
    assert machine.next_deadline() == 5 * S + 100 * MS
    moved = run(machine, t)
    assert moved is not None
    assert moved.generation == Generation(7, 2)
    # the next load round is a load interval later: until then only the members' expiry is due
    assert machine.next_deadline() == t + 300 * MS + 1
    for _ in range(10):
        t += 100 * MS
        machine.heartbeat(beat("a", load=hot[1:]), t)  # the load flips: still no round
        machine.heartbeat(beat("b", load=hot[:1]), t)
        assert run(machine, t) is None


def test_watch_answers_a_diff_from_history_and_the_whole_when_too_far_behind() -> None:
    machine = started("a", "b")
    gens = [machine.current]
    for i, name in enumerate("cdef"):
        now = (200 + 200 * i) * MS  # one join a round
        machine.heartbeat(beat(name), now)
        for m in machine.members:
            machine.heartbeat(beat(m.address), now + 100 * MS)
        gens.append(run(machine, now + 100 * MS))
    for m in machine.members:
        machine.heartbeat(beat(m.address, TERMINATING if m.address == "f" else RUNNING), S)
    gens.append(run(machine, S))  # only f's slices change hands
    assert all(g is not None for g in gens)
    current = machine.current
    assert current is not None
    assert len(machine.history) == 4
    assert machine.update_for(current.generation) is None
    assert machine.update_for(Generation(99, 0)) is None  # ahead: nothing newer to say
    assert machine.update_for(None) is current
    near = gens[-2]
    assert near is not None
    update = machine.update_for(near.generation)
    assert isinstance(update, AssignmentDiff)
    assert apply_update(near, update) == current
    far = gens[0]
    assert far is not None
    assert machine.update_for(far.generation) is current


def test_a_successor_starts_from_an_assignment_and_presumes_its_owners_alive() -> None:
    start = even_split(["a", "b"], Generation(3, 9))
    machine = AssignerMachine(SETTINGS, incarnation=4, now=0, start=start)
    assert machine.current is start
    assert machine.running() == {"a", "b"}
    assert run(machine, 0) is None
    machine.heartbeat(beat("a"), 200 * MS)
    after = run(machine, 301 * MS)  # b never spoke: gone after the timeout
    assert after is not None
    assert after.servers == {"a"}
    assert after.generation == Generation(4, 1)
    with pytest.raises(ValueError, match="older"):
        AssignerMachine(SETTINGS, incarnation=2, now=0, start=start)


def test_an_abandoned_proposal_is_proposed_again_and_nothing_was_published() -> None:
    machine = started("a")
    machine.heartbeat(beat("a"), 150 * MS)
    machine.heartbeat(beat("b"), 150 * MS)
    proposal = machine.step(250 * MS)
    assert proposal is not None
    assert machine.step(250 * MS) is None  # one proposal at a time
    machine.abandon(250 * MS)
    assert machine.current is not None
    assert machine.current.servers == {"a"}
    assert machine.step(260 * MS) is None  # retried a heartbeat interval later
    assert machine.next_deadline() == 350 * MS
    again = machine.step(350 * MS)
    assert again == proposal
    with pytest.raises(ValueError):
        machine.commit(proposal, 350 * MS)
    assert again is not None
    machine.commit(again, 350 * MS)


def test_members_beyond_the_bound_are_refused() -> None:
    machine = AssignerMachine(MachineSettings(max_members=2), incarnation=1, now=0)
    assert machine.heartbeat(beat("a"), 0) is Accepted.OK
    assert machine.heartbeat(beat("b"), 0) is Accepted.OK
    assert machine.heartbeat(beat("c"), 0) is Accepted.FULL
    assert machine.heartbeat(beat("a"), 1) is Accepted.OK


# --- properties over random histories -------------------------------------------------------

ADDRESSES = ("a", "b", "c", "d", "e")


@dataclass(frozen=True)
class Event:
    """A heartbeat from ``address`` (or silence) after ``dt_ms``; ``inc`` picks its process."""

    address: str
    state: MemberState
    inc: int
    dt_ms: int
    load: float


events = st.builds(
    Event,
    address=st.sampled_from(ADDRESSES),
    state=st.sampled_from([RUNNING, RUNNING, NOT_READY, TERMINATING]),
    inc=st.integers(0, 2),
    dt_ms=st.sampled_from([0, 10, 50, 120, 400]),
    load=st.floats(0, 100),
)


@THOROUGH
@given(st.lists(events, min_size=1, max_size=60))
def test_every_step_leaves_the_space_on_running_members_with_rising_generations(
    history: list[Event],
) -> None:
    machine = AssignerMachine(SETTINGS, incarnation=5, now=0)
    now = 0
    generations: list[Generation] = []
    for event in history:
        now += event.dt_ms * MS
        load = ((Slice(0, HASH_SPACE), event.load),)
        machine.heartbeat(beat(event.address, event.state, inc=str(event.inc), load=load), now)
        published = run(machine, now)
        if published is not None:
            generations.append(published.generation)
        current = machine.current
        running = machine.running()
        if current is None:
            assert not running or now < SETTINGS.settle_ns
            continue
        # exactly one owner for every hash, by construction: the pieces tile the space
        tiles = pieces(current)
        assert tiles[0][0].low == 0
        assert tiles[-1][0].high == HASH_SPACE
        if running:
            # no slice on a dead, draining or starting member once the step has run
            assert current.servers <= running, (current.servers, running)
    assert generations == sorted(set(generations))
    assert all(g.incarnation == 5 for g in generations)


@THOROUGH
@given(st.lists(events, min_size=1, max_size=40))
def test_the_deadline_says_when_a_step_has_work(history: list[Event]) -> None:
    machine = AssignerMachine(SETTINGS, incarnation=5, now=0)
    now = 0
    for event in history:
        now += event.dt_ms * MS
        machine.heartbeat(beat(event.address, event.state, inc=str(event.inc)), now)
        deadline = machine.next_deadline()
        if deadline is not None and deadline > now:
            # nothing to do before the deadline: a step just before it changes nothing
            before = machine.current
            assert machine.step(deadline - 1) is None or deadline - 1 < now
            assert machine.current is before
        now = max(now, deadline or now)
        run(machine, now)
        # stepping at the deadline does its work: the next one is later (no busy timer)
        after = machine.next_deadline()
        assert after is None or after > now


def uniform_reports(machine: AssignerMachine, now: int, per_server: dict[str, float]) -> None:
    """Each member heartbeats its slices of the current assignment with its load spread evenly
    over their width (what a slicelet's per-slice counts would say)."""
    current = machine.current
    assert current is not None
    for address, total in per_server.items():
        held = current.slices_of(address)
        width = sum(s.high - s.low for s in held) or 1
        load = tuple((s, total * (s.high - s.low) / width) for s in held)
        machine.heartbeat(beat(address, load=load), now)


def test_scaling_from_two_to_four_members_balances_in_one_round() -> None:
    machine = started("a", "b")
    uniform_reports(machine, 150 * MS, {"a": 100.0, "b": 100.0})
    machine.heartbeat(beat("c"), 150 * MS)
    machine.heartbeat(beat("d"), 150 * MS)
    before = machine.current
    scaled = run(machine, 250 * MS)  # both joins in one round
    assert scaled is not None
    assert before is not None
    assert scaled.generation == next_generation(before.generation)  # one round
    loads = server_loads(scaled, machine.load())
    assert set(loads) == {"a", "b", "c", "d"}
    assert max(loads.values()) / (sum(loads.values()) / 4) <= 1 + SETTINGS.rebalance.tolerance


def test_a_dead_members_slices_are_placed_by_the_load_it_last_reported() -> None:
    machine = started("a", "b", "c")
    # c carries most of the load; once it dies, its slices must not be taken as idle
    for t in range(150, 450, 100):
        uniform_reports(machine, t * MS, {"a": 10.0, "b": 10.0, "c": 100.0})
        run(machine, t * MS)
    gone_at = 350 * MS + SETTINGS.unhealthy_after_ns + 1
    for t in range(450, gone_at // MS, 100):
        uniform_reports(machine, t * MS, {"a": 10.0, "b": 10.0})
        run(machine, t * MS)
    uniform_reports(machine, gone_at, {"a": 10.0, "b": 10.0})
    placed = run(machine, gone_at)
    assert placed is not None
    assert placed.servers == {"a", "b"}
    # priced by c's last report, the two survivors share its 100 hits/s about evenly (taken
    # as idle, c's one slice would go whole to one of them: 110 against 10)
    first = even_split(["a", "b", "c"])
    truth = LoadMap.of(zip(first.slices_of("a") + first.slices_of("b") + first.slices_of("c"),
                           (10.0, 10.0, 100.0), strict=True))  # fmt: skip
    carried = server_loads(placed, truth)
    assert (
        max(carried.values()) / (sum(carried.values()) / 2) <= 1 + 2 * SETTINGS.rebalance.tolerance
    )


def test_heartbeats_taken_while_a_round_is_computed_count_in_the_next_one() -> None:
    machine = started("a")  # committed at 100 ms
    machine.heartbeat(beat("a"), 250 * MS)
    machine.heartbeat(beat("b"), 250 * MS)
    job = machine.begin(350 * MS)
    assert job is not None
    assert job.running == {"a", "b"}
    assert machine.begin(350 * MS) is None  # one round at a time
    assert machine.next_deadline() == 250 * MS + SETTINGS.unhealthy_after_ns + 1
    machine.heartbeat(beat("c"), 360 * MS)  # arrives while the round runs elsewhere
    result = job.run()
    with pytest.raises(ValueError, match="in progress"):
        machine.finish(dataclasses.replace(job), result)
    proposal = machine.finish(job, result)
    assert proposal is not None
    assert proposal.servers == {"a", "b"}
    machine.commit(proposal, 370 * MS)
    later = run(machine, 460 * MS)  # c's join, after the batch window
    assert later is not None
    assert later.servers == {"a", "b", "c"}
