"""A restarted assigner rebuilds the assignment the members hold from their heartbeats."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.assigner.machine import AssignerMachine
from ratekeeper.assigner.members import Heartbeat, LoadReport, Member, MemberState
from ratekeeper.assigner.recovery import NOBODY, newest_known, recovered
from ratekeeper.core.assignment import moves, pieces
from ratekeeper.core.rebalance import rebalance
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split
from tests.core.test_assignment import assignments

from .test_machine import SETTINGS, run

RUNNING = MemberState.RUNNING


def held(
    assignment: Assignment, address: str, rate: float = 1.0
) -> tuple[tuple[Slice, float], ...]:
    """What a slicelet reports: a load entry for every slice it owns."""
    return tuple((s, rate) for s in assignment.slices_of(address))


def member(address: str, known: Generation | None, load: LoadReport) -> Member:
    return Member(address, RUNNING, "x", 0, known, load)


def layout_of(n: int) -> Assignment:
    """A layout unlike an even split: the one a few rounds of load made."""
    names = [f"m{i}" for i in range(n)]
    start = even_split(names, Generation(3, 7))
    hot = LoadMap.of([(Slice(0, HASH_SPACE // 8), 100.0), (Slice(0, HASH_SPACE), 10.0)])
    return rebalance(start, names, hot).assignment


def test_the_members_reports_rebuild_the_assignment_they_hold() -> None:
    before = layout_of(3)
    members = [member(a, before.generation, held(before, a)) for a in sorted(before.servers)]
    assert newest_known(members) == before.generation
    assert recovered(members) == before


def test_ranges_nobody_reported_are_left_to_nobody() -> None:
    before = layout_of(3)
    members = [member(a, before.generation, held(before, a)) for a in ("m0", "m1")]
    rebuilt = recovered(members)
    assert rebuilt is not None
    for piece in before.slices_of("m2"):
        assert rebuilt.owner_of(piece.low) == NOBODY
    for address in ("m0", "m1"):
        assert rebuilt.slices_of(address) == before.slices_of(address)


def test_reports_of_older_generations_and_overlaps_are_not_rebuilt_from() -> None:
    before = layout_of(2)
    stale = even_split(["m0", "m1"], Generation(3, 1))
    members = [
        member("m0", before.generation, held(before, "m0")),
        member("m1", stale.generation, held(stale, "m1")),  # behind: not part of the layout
    ]
    rebuilt = recovered(members)
    assert rebuilt is not None
    assert set(rebuilt.owners) == {"m0", NOBODY}
    clash = [
        member("m0", before.generation, ((Slice(0, HASH_SPACE), 1.0),)),
        member("m1", before.generation, ((Slice(0, 10), 1.0),)),
    ]
    assert recovered(clash) is None
    assert recovered([member("m0", None, ())]) is None


def test_a_restarted_assigner_moves_no_key_of_a_member_that_reported() -> None:
    before = layout_of(3)
    machine = AssignerMachine(SETTINGS, incarnation=9, now=0)
    for address in ("m0", "m1"):  # m2 died with the old assigner
        load = held(before, address, 5.0)
        machine.heartbeat(Heartbeat(address, RUNNING, "x", before.generation, load), 0)
    first = run(machine, SETTINGS.unhealthy_after_ns)  # m2 has had its chance to report
    assert first is not None
    assert first.generation == Generation(9, 1)
    assert first.servers == {"m0", "m1"}
    assert {m.source for m in moves(before, first)} == {"m2"}


def test_a_restarted_assigner_keeps_the_layout_when_every_member_reported() -> None:
    before = layout_of(3)
    machine = AssignerMachine(SETTINGS, incarnation=9, now=0)
    for address in sorted(before.servers):
        beat = Heartbeat(address, RUNNING, "x", before.generation, held(before, address, 5.0))
        machine.heartbeat(beat, 0)
    first = run(machine, SETTINGS.settle_ns)
    assert first is not None
    assert first.generation == Generation(9, 1)
    assert moves(before, first) == ()


def test_members_ahead_of_a_restarted_assigner_make_it_outrank_them() -> None:
    # the wall clock stepped back: the new incarnation is below the one the members hold
    before = layout_of(2)
    ahead = Assignment(Generation(50, 4), before.starts, before.owners)
    machine = AssignerMachine(SETTINGS, incarnation=9, now=0)
    for address in sorted(ahead.servers):
        machine.heartbeat(
            Heartbeat(address, RUNNING, "x", ahead.generation, held(ahead, address)), 0
        )
    first = run(machine, SETTINGS.settle_ns)
    assert first is not None
    assert first.generation > ahead.generation
    assert machine.update_for(ahead.generation) is not None


def test_a_restarted_assigner_waits_for_every_holder_up_to_the_timeout() -> None:
    before = layout_of(3)
    machine = AssignerMachine(SETTINGS, incarnation=9, now=0)
    for address in ("m0", "m1"):
        beat = Heartbeat(address, RUNNING, "x", before.generation, held(before, address))
        machine.heartbeat(beat, 0)
    assert run(machine, SETTINGS.settle_ns) is None  # m2's part is missing: keep listening
    assert machine.next_deadline() == SETTINGS.unhealthy_after_ns
    late = Heartbeat("m2", RUNNING, "x", before.generation, held(before, "m2"))
    machine.heartbeat(late, SETTINGS.settle_ns + 1)  # m2 was only backing off
    first = run(machine, SETTINGS.settle_ns + 1)
    assert first is not None
    assert moves(before, first) == ()


@settings(max_examples=100, deadline=None)
@given(assignments(), st.sets(st.sampled_from("abcd")))
def test_any_assignment_is_rebuilt_from_the_members_that_report(
    before: Assignment, reporting: set[str]
) -> None:
    members = [member(a, before.generation, held(before, a)) for a in sorted(reporting)]
    rebuilt = recovered(members)
    if not reporting & before.servers:
        assert rebuilt is None
        return
    assert rebuilt is not None
    assert rebuilt.generation == before.generation
    for piece, owner in pieces(before):
        expected = owner if owner in reporting else NOBODY
        assert rebuilt.owner_of(piece.low) == expected
        assert rebuilt.owner_of(piece.high - 1) == expected
