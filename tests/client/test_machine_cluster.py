"""The machine in a cluster, by hand: per-owner reports, generations, failover without lost hits."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratekeeper.client.machine import LimiterMachine, Outbound
from ratekeeper.client.options import LimiterOptions
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.slices import Assignment, Generation, even_split
from ratekeeper.proto.assignment import update_to_wire
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

from .conftest import FakeClock, admitted_in, sans_io
from .members import owner_of

MS = 1_000_000
SEED = "seed:1"


def owner(assignment: Assignment, name: str) -> str:
    return assignment.owner_of(key_hash(canonical_bytes("default", [("key", name)])))


def answer(out: Outbound, newer: Assignment | None = None) -> pb.ReportResponse:
    response = pb.ReportResponse(
        instructions=[pb.KeyInstruction(valid_for_ns=MS)] * len(out.request.keys)
    )
    if newer is not None:
        response.assignment.CopyFrom(update_to_wire(newer))
        response.generation.incarnation = newer.generation.incarnation
        response.generation.number = newer.generation.number
    return response


def cycle(m: LimiterMachine, now: int) -> list[Outbound]:
    outbound = m.collect(now)
    for out in outbound:
        m.answered(out.address, answer(out), now)
    return outbound


def test_before_the_assignment_is_known_everything_goes_to_the_given_address(
    clock: FakeClock,
) -> None:
    lim, m = sans_io(SEED)
    for i in range(50):
        lim.allow(f"user{i}")
    (out,) = cycle(m, clock())
    assert out.address == SEED
    assert len(out.request.keys) == 50
    assert (out.request.generation.incarnation, out.request.generation.number) == (0, 0)
    assert not m.ready  # answered, but the assignment is not decided yet


def test_one_report_per_owner_each_naming_the_generation_it_routed_with(
    clock: FakeClock,
) -> None:
    lim, m = sans_io(SEED)
    cluster = even_split(["a:1", "b:1", "c:1"], Generation(3, 9))
    assert m.clerk.seen(cluster)
    names = [f"user{i}" for i in range(300)]
    for name in names:
        lim.allow(name)
    outbound = cycle(m, clock())
    assert sorted(o.address for o in outbound) == ["a:1", "b:1", "c:1"]  # not the seed
    routed = {}
    for out in outbound:
        assert (out.request.generation.incarnation, out.request.generation.number) == (3, 9)
        for entry in out.request.keys:
            routed[entry.entries[0].value] = out.address
    assert routed == {name: owner(cluster, name) for name in names}
    assert m.ready
    stats = lim.stats
    assert (stats.owners, stats.generation) == (3, (3, 9))


def test_an_assignment_in_a_report_answer_routes_the_next_cycle(clock: FakeClock) -> None:
    lim, m = sans_io(SEED)
    lim.allow("k")
    (out,) = m.collect(clock())
    newer = even_split(["a:1", "b:1"], Generation(1, 2))
    m.answered(out.address, answer(out, newer), clock())  # a member that owns no key of ours
    assert m.assignment == newer
    lim.allow("k")
    (again,) = [o for o in cycle(m, clock()) if o.request.keys]
    assert again.address == owner(newer, "k")
    older = even_split([SEED], Generation(1, 1))
    m.answered(again.address, answer(again, older), clock())  # stale: ignored
    assert m.assignment == newer


def test_a_dead_owners_counts_go_to_the_new_owner_once_the_assignment_changes(
    clock: FakeClock,
) -> None:
    lim, m = sans_io(["a:1", "b:1"], limit="1000/s")
    on_b = [n for n in (f"user{i}" for i in range(100)) if owner(m.assignment, n) == "b:1"]
    for name in on_b:
        lim.allow(name)
    for out in m.collect(clock()):
        if out.address == "b:1":
            m.failed(out.address, "UNAVAILABLE: b died", clock())
        else:
            m.answered(out.address, answer(out), clock())
    for name in on_b:
        lim.allow(name)  # more hits while b is down: they wait behind b's unanswered report
    clock.advance(0.1)
    outbound = m.collect(clock())
    (to_b,) = [o for o in outbound if o.address == "b:1"]
    assert sum(k.admitted for k in to_b.request.keys) == len(on_b)  # the same report, resent
    m.failed("b:1", "UNAVAILABLE: b died", clock())
    (to_a,) = [o for o in outbound if o.address == "a:1"]
    m.answered("a:1", answer(to_a), clock())
    survivors = even_split(["a:1"], Generation(1, 1))  # the assigner gave b's slices to a
    assert m.clerk.seen(survivors)
    clock.advance(0.1)
    outbound = cycle(m, clock())
    assert [o.address for o in outbound] == ["a:1"]  # none to b any more
    (to_a,) = outbound
    assert sum(k.admitted for k in to_a.request.keys) == 2 * len(on_b)  # nothing lost
    assert m.stats.rerouted == len(on_b)
    assert "b:1" not in m.health.servers
    assert m.ready


def test_in_a_cluster_a_dead_owners_backlog_waits_for_its_successor(clock: FakeClock) -> None:
    """A single server's backlog is forgiven after a second; a member's is kept until the
    assigner has had time to declare it dead, and then goes to the new owner."""
    lim, m = sans_io(SEED, limit="1000/s", report_interval=0.1)
    assert m.clerk.seen(even_split(["a:1", "b:1"], Generation(1, 1)))
    on_b = [n for n in (f"user{i}" for i in range(100)) if owner(m.assignment, n) == "b:1"]
    hits = 0
    for _ in range(30):  # b dies: 3 s of failed reports, more than a single server is given
        for name in on_b:
            hits += lim.allow(name)
        for out in m.collect(clock()):
            if out.address == "b:1":
                m.failed(out.address, "UNAVAILABLE: b died", clock())
            else:
                m.answered(out.address, answer(out), clock())
        clock.advance(0.1)
    assert m.clerk.seen(even_split(["a:1"], Generation(1, 2)))  # the assigner moved b's slices
    (to_a,) = cycle(m, clock())
    assert to_a.address == "a:1"
    assert sum(k.admitted for k in to_a.request.keys) == hits  # nothing forgiven, nothing lost
    assert hits == 30 * len(on_b)


def test_a_dead_owners_counts_sent_by_id_go_to_the_new_owner_too(clock: FakeClock) -> None:
    """Compact reports name known keys by id; withdrawn, their counts go to the new owner."""
    m = LimiterMachine(["a:1", "b:1"], LimiterOptions(limit="1000/s", compact_reports=True))
    names = [f"user{i}" for i in range(60)]
    on_b = [n for n in names if owner(m.assignment, n) == "b:1"]
    for name in names:
        m.decide(name, 1, clock())
    cycle(m, clock())  # every key in full once: the servers know their ids
    clock.advance(0.1)
    for name in names:
        m.decide(name, 2, clock())
    outbound = m.collect(clock())
    (to_b,) = [o for o in outbound if o.address == "b:1"]
    assert list(to_b.request.known_admitted) == [2] * len(on_b)  # by id now
    for out in outbound:
        if out.address == "b:1":
            m.failed(out.address, "UNAVAILABLE: b died", clock())
        else:
            m.answered(out.address, answer(out), clock())
    assert m.clerk.seen(even_split(["a:1"], Generation(1, 1)))
    clock.advance(0.1)
    (to_a,) = [o for o in m.collect(clock()) if o.request.keys]
    assert to_a.address == "a:1"
    assert sum(k.admitted for k in to_a.request.keys) == 2 * len(on_b)  # in full: a never saw them
    assert m.stats.rerouted == 2 * len(on_b)


SERVERS = ("a:1", "b:1", "c:1", "d:1")

#: One report cycle of the property below: hits (key, count), which servers are up, the owners of
#: a new assignment adopted after the cycle (none: no change), milliseconds to wait.
rounds = st.tuples(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 3)), max_size=8),
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.one_of(st.none(), st.lists(st.sampled_from(SERVERS), min_size=1, max_size=3)),
    st.integers(1, 300),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(rounds, max_size=25))
def test_every_hit_is_counted_once_whatever_fails_and_moves(
    clock: FakeClock,
    steps: list[tuple[list[tuple[int, int]], list[bool], list[str] | None, int]],
) -> None:
    """Reports to dead servers are not applied; the assignment changes at random; each server
    applies each (client, number) once; at the end every admitted hit was applied once, and
    every report held only keys its server owns by the generation it names."""
    lim, m = sans_io(SEED, limit="50/s", report_interval=0.1)
    applied: dict[tuple[str, int], pb.ReportRequest] = {}
    streak = dict.fromkeys((SEED, *SERVERS), 0)
    counted = 0
    by_generation = {(0, 0): m.assignment}

    def run(answers: list[bool]) -> None:
        outbound = m.collect(clock())
        assert len({o.address for o in outbound}) == len(outbound)  # one report per server
        for out in outbound:
            generation = out.request.generation
            routed_by = by_generation[(generation.incarnation, generation.number)]
            # a resent report is unchanged: it still names the generation it was routed by
            assert all(owner_of(routed_by, e) == out.address for e in out.request.keys)
            up = answers[SERVERS.index(out.address)] if out.address in SERVERS else True
            # at most 5 failures in a row: fewer than the ~1 s after which a backlog is forgiven
            if up or streak[out.address] >= 5:
                applied.setdefault((out.address, out.request.sequence), out.request)
                m.answered(out.address, answer(out), clock())
                streak[out.address] = 0
            else:
                m.failed(out.address, "UNAVAILABLE", clock())
                streak[out.address] += 1

    for number, (hits, answers, owners, wait_ms) in enumerate(steps, start=1):
        for key, n in hits:
            counted += n if lim.acquire(f"k{key}", n).allowed else 0
        run(answers)
        if owners is not None:
            assert m.clerk.seen(even_split(owners, Generation(1, number)))
            by_generation[(1, number)] = m.assignment
        clock.advance(wait_ms / 1000)
    m.close()
    for _ in range(8):  # the servers are back: a few cycles settle everything
        run([True] * 4)
    assert sum(admitted_in(r) for r in applied.values()) == counted
