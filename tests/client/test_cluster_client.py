"""The Limiter against cluster members over real gRPC on loopback: it learns the assignment by
Watch from the one address it is given, routes every key to its owner, follows a new assignment
and fails over when an owner dies, without losing a counted hit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from ratekeeper import Limiter
from ratekeeper.core.slices import Generation, even_split

from .conftest import ReportServer
from .members import ThreadedMembers

KEYS = [f"user{i}" for i in range(200)]


@pytest.fixture
def members() -> Iterator[ThreadedMembers]:
    fleet = ThreadedMembers(2)
    try:
        yield fleet
    finally:
        fleet.close()


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_one_address_learns_the_cluster_and_routes_every_key_to_its_owner(
    members: ThreadedMembers,
) -> None:
    a, b = members.addresses
    members.publish(even_split([a, b], Generation(1, 1)))
    registry = CollectorRegistry()
    with Limiter(a, limit="1000/s", report_interval=0.05) as lim:
        lim.register_metrics(registry)
        assert lim.wait_ready(10)
        assert (lim.stats.owners, lim.stats.generation) == (2, (1, 1))
        assert set(lim.servers) == {a, b}
        labels = {"client": lim.client_id}
        assert registry.get_sample_value("ratekeeper_client_owners", labels) == 2
        assert registry.get_sample_value("ratekeeper_client_assignment_generation", labels) == 1
        assert registry.get_sample_value("ratekeeper_client_ready", labels) == 1
        for key in KEYS:
            lim.allow(key)
        lim.flush()
    assert members.members.misdirected() == []
    counts = [svc.admitted() for svc in members.members.services]
    assert sum(counts) == len(KEYS)
    assert all(counts)  # both owners were reported to


def test_a_new_assignment_arrives_by_the_long_poll_and_routes_the_next_reports(
    members: ThreadedMembers,
) -> None:
    a, b = members.addresses
    members.publish(even_split([a, b], Generation(1, 1)))
    with Limiter(a, limit="1000/s", report_interval=0.05) as lim:
        assert lim.wait_ready(10)
        members.publish(even_split([b], Generation(1, 2)))  # a keeps serving, owns nothing
        eventually(lambda: lim.stats.generation == (1, 2))
        assert lim.stats.owners == 1
        before = members.members.services[0].admitted()
        for key in KEYS:
            lim.allow(key)
        lim.flush()
        # a report that timed out on the busy machine is resent: wait for it
        eventually(lambda: members.members.services[1].admitted() == len(KEYS))
        assert members.members.services[0].admitted() == before
        assert lim.ready


def test_a_dead_owners_hits_go_to_the_new_owner_none_lost(members: ThreadedMembers) -> None:
    a, b = members.addresses
    members.publish(even_split([a, b], Generation(1, 1)))
    with Limiter(a, limit="1000/s", report_interval=0.05, timeout=0.02) as lim:
        assert lim.wait_ready(10)
        members.stop_member(1)  # b dies: its keys' reports fail and wait
        admitted = sum(lim.allow(key) for key in KEYS)
        eventually(lambda: lim.servers[b].failing_for >= 2)
        admitted += sum(lim.allow(key) for key in KEYS)
        members.publish(even_split([a], Generation(1, 2)))  # the assigner moved b's slices
        eventually(lambda: lim.stats.generation == (1, 2))
        eventually(lambda: lim.stats.rerouted > 0)  # b's unanswered report, re-sent to a
        eventually(lambda: lim.ready)
        lim.flush()
        assert lim._peers.addresses() == {a}  # b left the assignment: its channel is closed
        assert admitted == 2 * len(KEYS)
        # every hit reaches a (a report that timed out on a busy machine is resent)
        eventually(lambda: sum(svc.admitted() for svc in members.members.services) >= admitted)
    assert sum(svc.admitted() for svc in members.members.services) == admitted


def test_the_given_address_may_go_away_once_the_cluster_is_known(
    members: ThreadedMembers,
) -> None:
    a, b = members.addresses
    members.publish(even_split([a, b], Generation(1, 1)))
    with Limiter(a, limit="1000/s", report_interval=0.05, timeout=0.02) as lim:
        assert lim.wait_ready(10)
        members.stop_member(0)
        members.publish(even_split([b], Generation(1, 2)))  # only b can tell it now
        eventually(lambda: lim.stats.generation == (1, 2))
        eventually(lambda: lim.ready)
        for key in KEYS:
            lim.allow(key)
        lim.flush()
        eventually(lambda: members.members.services[1].admitted() >= len(KEYS))


def test_a_plain_server_is_a_single_owner(report_server: ReportServer) -> None:
    with Limiter(report_server.address, limit="10/s", report_interval=0.05) as lim:
        assert lim.wait_ready(10)
        assert lim._machine.clerk.stats.mode == "single"
        assert (lim.stats.owners, lim.stats.generation) == (1, (0, 0))
        lim.allow("k")
        lim.flush()
    assert report_server.service.admitted() == 1


def test_wait_ready_gives_up_on_an_address_nobody_serves() -> None:
    with Limiter("127.0.0.1:9", report_interval=0.05, timeout=0.02) as lim:
        started = time.monotonic()
        assert not lim.wait_ready(0.3)
        assert 0.25 < time.monotonic() - started < 5
        assert lim.allow("k")  # fails open meanwhile
