"""Highly available assigners as real processes on a real etcd, under client load.

Two ``ratekeeper assigner --etcd`` processes, three ``ratekeeper serve --join a1,a2`` members and
a Limiter reporting through one member. The leader is killed, etcd is stopped, and the leader is
frozen past its lease; routing and limiting never stop, and no two leaders publish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ratekeeper
from ratekeeper.assigner.etcd_coordination import EtcdCoordination, parse_endpoints
from ratekeeper.assigner.ha import decode_assignment
from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as assignment_pb
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.cluster import Cluster
from ratekeeper.testing.etcd_server import EtcdServer
from ratekeeper.transport.channels import open_channel

pytestmark = pytest.mark.integration

TTL = 2  # seconds: the etcd lease of a leadership
HEARTBEAT = 0.2


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def cluster(etcd: EtcdServer, tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(
        3,
        log_dir=tmp_path / "logs",
        etcd=etcd.endpoint,
        assigners=2,
        election_ttl=TTL,
        heartbeat_interval=HEARTBEAT,
        unhealthy_after=1.5,
    ) as running:
        yield running


class Load:
    """A Limiter given one member, deciding 200 keys in a loop on a thread; counts errors."""

    def __init__(self, member: str) -> None:
        self.limiter = ratekeeper.Limiter(member, limit="1000/s")
        self.errors: list[BaseException] = []
        self.decisions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for i in range(200):
                    self.limiter.allow(f"user-{i}")
                self.decisions += 200
            except BaseException as exc:  # any error is what the test is about
                self.errors.append(exc)
            time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.limiter.close()

    def answered(self) -> int:
        return self.limiter.stats.answered


def _member_status(cluster: Cluster) -> pb.StatusResponse:
    """Status from a live member: what it holds and serves by (no assigner needed)."""
    channel = open_channel(cluster.live()[0])
    try:
        answer: pb.StatusResponse = AssignerCalls(channel).status(pb.StatusRequest(), timeout=5)
        return answer
    finally:
        channel.close()


def _stored(etcd: EtcdServer) -> assignment_pb.Assignment | None:
    async def load() -> bytes | None:
        coordination = EtcdCoordination(parse_endpoints(etcd.endpoint))
        try:
            return await coordination.load()
        finally:
            await coordination.close()

    data = asyncio.run(load())
    return None if data is None else assignment_pb.Assignment.FromString(data)


def _leader(cluster: Cluster) -> int:
    status = cluster.wait_until(lambda s: s.assigner in cluster.assigners, "a leader")
    return cluster.assigners.index(status.assigner)


def _layout(assignment: assignment_pb.Assignment) -> tuple[object, ...]:
    return (tuple(assignment.servers), tuple(assignment.starts), tuple(assignment.owners))


def test_killing_the_leader_hands_over_within_the_ttl_with_the_same_slices(
    cluster: Cluster, etcd: EtcdServer
) -> None:
    with Load(cluster.addresses[0]) as load:
        time.sleep(1.0)
        before = cluster.status().assignment
        leader = _leader(cluster)
        answered = load.answered()
        killed_at = time.monotonic()
        cluster.kill_assigner(leader)
        after = cluster.wait_until(
            lambda s: (
                s.assigner != cluster.assigners[leader]
                and s.assignment.generation.incarnation > before.generation.incarnation
            ),
            "a standby leading with a new incarnation",
            timeout=TTL + 10,
        )
        took = time.monotonic() - killed_at
        time.sleep(1.0)
        assert load.answered() > answered  # reports kept being answered throughout
    print(f"failover took {took:.2f} s (ttl {TTL} s, heartbeat {HEARTBEAT} s)")
    assert took <= TTL + HEARTBEAT + 0.5  # the lease, a heartbeat, and the Status polling
    assert not load.errors
    assert _layout(after.assignment) == _layout(before)  # no move membership did not need
    stored = _stored(etcd)
    assert stored is not None
    assert stored.generation.incarnation == after.assignment.generation.incarnation


def test_etcd_away_for_ten_seconds_changes_nothing_and_the_cluster_recovers(
    cluster: Cluster, etcd: EtcdServer
) -> None:
    with Load(cluster.addresses[0]) as load:
        time.sleep(1.0)
        before = _member_status(cluster).assignment.generation
        etcd.stop()
        answered = load.answered()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            held = _member_status(cluster).assignment.generation
            assert (held.incarnation, held.number) == (before.incarnation, before.number)
            time.sleep(0.5)
        assert load.answered() > answered  # limiting went on with no assigner leading
        etcd.start()
        _leader(cluster)  # a leader again, on its own
        cluster.kill(2)  # and it can assign again: the dead member's slices move
        cluster.wait_covered(cluster.addresses[:2], timeout=15)
    assert not load.errors


def test_a_leader_frozen_past_its_lease_publishes_nothing_when_it_wakes(
    cluster: Cluster, etcd: EtcdServer
) -> None:
    leader = _leader(cluster)

    async def holder_revision() -> int:
        coordination = EtcdCoordination(parse_endpoints(etcd.endpoint))
        try:
            held = await coordination.holder()
            assert held is not None
            return held.revision
        finally:
            await coordination.close()

    old_fence = asyncio.run(holder_revision())
    frozen = cluster.assigner_processes[leader]
    frozen.pause()
    try:
        after = cluster.wait_until(
            lambda s: s.assigner not in ("", cluster.assigners[leader]),
            "a standby leading",
            timeout=TTL + 10,
        )
        # While it sleeps, membership changes: the successor assigns without member 2.
        cluster.kill(2)
        moved = cluster.wait_covered(cluster.addresses[:2], timeout=15)
    finally:
        frozen.resume()
    time.sleep(3.0)  # the old leader runs again: its timer and election catch up
    stored = _stored(etcd)
    assert stored is not None
    assert stored.generation.incarnation == moved.assignment.generation.incarnation
    assert stored.generation.incarnation > 0
    assert after.assignment.generation.incarnation == moved.assignment.generation.incarnation

    async def late_write() -> bool:
        coordination = EtcdCoordination(parse_endpoints(etcd.endpoint))
        try:
            return await coordination.save(b"late", old_fence)
        finally:
            await coordination.close()

    assert not asyncio.run(late_write())  # what the old leader's write would meet
    log = frozen.log_text()
    assert "stopped leading" in log or "refused" in log
    assert decode_assignment(stored.SerializeToString()).generation.incarnation == (
        moved.assignment.generation.incarnation
    )
