"""The clerk, by hand: which Watch to make, what its answers decide, failover between members."""

from __future__ import annotations

from ratekeeper.client.clerk import BACKOFF_NS, IDLE_GAP_NS, MAX_BACKOFF_NS, Clerk
from ratekeeper.core.assignment_diff import diff
from ratekeeper.core.slices import Generation, even_split, single_owner
from ratekeeper.proto.assignment import update_to_wire
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as cpb

NOW = 10**12
SEED = "seed:1"


def discovering() -> Clerk:
    return Clerk(single_owner(SEED), discover=True, caller="client-1")


def whole(*owners: str, number: int = 1) -> cpb.WatchResponse:
    return cpb.WatchResponse(update=update_to_wire(even_split(list(owners), Generation(7, number))))


def test_a_static_assignment_is_known_and_never_watched() -> None:
    clerk = Clerk(even_split(["a:1", "b:1"]), discover=False, caller="c")
    assert clerk.known
    assert clerk.stats.mode == "static"
    assert clerk.next_watch(NOW) is None
    assert clerk.watching is None


def test_the_first_watch_asks_the_given_address_for_everything_at_once() -> None:
    clerk = discovering()
    assert not clerk.known
    call = clerk.next_watch(NOW)
    assert call is not None
    assert (call.address, call.at) == (SEED, NOW)
    assert not call.request.HasField("known")  # none held yet: answered at once
    assert call.request.caller == "client-1"
    assert call.timeout > call.request.wait_ns / 1e9
    assert clerk.assignment.owner_of(0) == SEED  # provisional: the seed takes every report


def test_a_watch_answer_decides_a_cluster_and_the_next_one_carries_its_generation() -> None:
    clerk = discovering()
    clerk.watched(SEED, whole("a:1", "b:1", "c:1"), NOW)
    assert clerk.known
    assert clerk.stats.mode == "cluster"
    assert clerk.table.servers == frozenset({"a:1", "b:1", "c:1"})
    call = clerk.next_watch(NOW)
    assert call is not None
    assert call.address == SEED  # the member that answered is asked again
    assert (call.request.known.incarnation, call.request.known.number) == (7, 1)
    assert call.at == NOW


def test_a_diff_applies_to_the_held_assignment_and_an_older_whole_is_ignored() -> None:
    clerk = discovering()
    first = even_split(["a:1", "b:1"], Generation(7, 1))
    second = even_split(["a:1", "c:1"], Generation(7, 2))
    clerk.watched(SEED, cpb.WatchResponse(update=update_to_wire(first)), NOW)
    clerk.watched(SEED, cpb.WatchResponse(update=update_to_wire(diff(first, second))), NOW)
    assert clerk.table.generation == Generation(7, 2)
    assert clerk.table.servers == frozenset({"a:1", "c:1"})
    version = clerk.table.version
    clerk.watched(SEED, cpb.WatchResponse(update=update_to_wire(first)), NOW)  # stale
    assert clerk.table.version == version
    assert clerk.table.generation == Generation(7, 2)
    assert clerk.stats.adopted == 2


def test_nothing_new_waits_a_little_before_asking_again() -> None:
    clerk = discovering()
    clerk.watched(SEED, whole("a:1"), NOW)
    clerk.watched(SEED, cpb.WatchResponse(), NOW)  # the long poll ended without news
    call = clerk.next_watch(NOW)
    assert call is not None
    assert call.at == NOW + IDLE_GAP_NS


def test_unimplemented_means_a_single_server_that_owns_everything() -> None:
    clerk = discovering()
    clerk.watch_failed(SEED, "UNIMPLEMENTED: Method not found!", NOW, unimplemented=True)
    assert clerk.known
    assert clerk.stats.mode == "single"
    assert clerk.assignment.servers == frozenset({SEED})
    assert clerk.next_watch(NOW) is None
    # a server that joins a cluster later still hands its assignment over in report answers
    assert clerk.seen(even_split(["a:1", "b:1"], Generation(1, 1)))
    assert clerk.table.servers == frozenset({"a:1", "b:1"})
    assert clerk.stats.mode == "cluster"


def test_an_unreachable_address_is_retried_with_a_growing_backoff_and_stays_unknown() -> None:
    clerk = discovering()
    delays = []
    for _ in range(8):
        call = clerk.next_watch(NOW)
        assert call is not None
        assert call.address == SEED  # no other member known yet
        clerk.watch_failed(SEED, "UNAVAILABLE: connection refused", NOW)
        after = clerk.next_watch(NOW)
        assert after is not None
        delays.append(after.at - NOW)
    assert delays[0] == BACKOFF_NS
    assert delays == sorted(delays)
    assert delays[-1] == MAX_BACKOFF_NS
    assert not clerk.known
    clerk.watched(SEED, whole("a:1"), NOW)  # it came up
    call = clerk.next_watch(NOW)
    assert call is not None
    assert call.at == NOW


def test_a_failed_watch_moves_to_another_member_of_the_assignment() -> None:
    clerk = discovering()
    clerk.watched(SEED, whole(SEED, "b:1", "c:1"), NOW)
    asked = []
    for _ in range(4):
        call = clerk.next_watch(NOW)
        assert call is not None
        asked.append(call.address)
        clerk.watch_failed(call.address, "UNAVAILABLE", NOW)
    assert asked == [SEED, "b:1", "c:1", SEED]  # every member in turn
    # UNIMPLEMENTED from a member once the cluster is known is just a failure
    clerk.watch_failed(SEED, "UNIMPLEMENTED", NOW, unimplemented=True)
    assert clerk.stats.mode == "cluster"


def test_a_malformed_answer_counts_as_a_failed_watch() -> None:
    clerk = discovering()
    bad = whole("a:1")
    bad.update.whole.owners[0] = 9  # no server 9
    clerk.watched(SEED, bad, NOW)
    assert not clerk.known
    assert clerk.stats.watch_failures == 1


def test_an_assignment_in_a_report_answer_decides_too() -> None:
    clerk = discovering()
    assert clerk.seen_wire(update_to_wire(even_split(["a:1", "b:1"], Generation(1, 3))))
    assert clerk.known
    assert clerk.stats.mode == "cluster"
    call = clerk.next_watch(NOW)
    assert call is not None
    assert call.request.known.number == 3
    broken = update_to_wire(even_split(["a:1"], Generation(1, 4)))
    broken.whole.starts[0] = 5  # does not start at 0
    assert not clerk.seen_wire(broken)
    assert clerk.table.generation == Generation(1, 3)


def test_closing_stops_the_watch() -> None:
    clerk = discovering()
    clerk.close()
    assert clerk.next_watch(NOW) is None


def test_the_watched_member_stays_put_when_the_assignment_changes_under_it() -> None:
    clerk = discovering()
    clerk.watched(SEED, whole(SEED, "b:1", "c:1"), NOW)
    clerk.watch_failed(SEED, "UNAVAILABLE", NOW)
    assert clerk.watching == "b:1"
    clerk.seen(even_split(["c:1", "d:1"], Generation(7, 2)))  # from a report, mid-poll
    assert clerk.watching == "b:1"  # its channel stays open for the call in flight
    clerk.watch_failed("b:1", "UNAVAILABLE", NOW)  # gone: start over from the given address
    assert clerk.watching == SEED
    clerk.watch_failed(SEED, "UNAVAILABLE", NOW)
    assert clerk.watching == "c:1"
