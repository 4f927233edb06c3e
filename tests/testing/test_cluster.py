"""``testing.cluster.Cluster``: a real assigner and real members, killed, restarted and added."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from ratekeeper.core.assignment import moves
from ratekeeper.proto.assignment import assignment_from_wire
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.cluster import Cluster, assigner_argv, member_argv

pytestmark = pytest.mark.integration


def test_the_command_lines_join_the_assigner_on_the_given_ports(tmp_path: Path) -> None:
    assert assigner_argv("127.0.0.1:1", "--unhealthy-after", "1")[-4:] == [
        "--listen", "127.0.0.1:1", "--unhealthy-after", "1"
    ]  # fmt: skip
    argv = member_argv("127.0.0.1:1", 2, 3, tmp_path, "--log-level", "WARNING")
    assert argv[3:] == ["serve", "--join", "127.0.0.1:1", "--grpc-port", "2", "--http-port", "3",
                        "--config", str(tmp_path), "--log-level", "WARNING"]  # fmt: skip
    assert "--config" not in member_argv("127.0.0.1:1", 2, 3, None)


def test_members_are_killed_restarted_and_added_and_the_assignment_follows(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ratekeeper.server.slicelet", reason="serve --join is not merged yet")
    with Cluster(3, log_dir=tmp_path, heartbeat_interval=0.1, unhealthy_after=0.6) as cluster:
        status = cluster.status()
        assert set(status.assignment.servers) == set(cluster.addresses)
        assert all(m.state == pb.RUNNING for m in status.members)

        killed = time.monotonic()
        cluster.kill(0)
        cluster.wait_covered(cluster.addresses[1:], timeout=10)
        assert time.monotonic() - killed < 0.6 + 2.0  # the timeout, and a loaded machine

        cluster.restart(0)
        assert set(cluster.status().assignment.servers) == set(cluster.addresses)

        added = cluster.add_server()
        assert added == 3
        assert set(cluster.status().assignment.servers) == set(cluster.addresses)

        cluster.kill(1, signal.SIGTERM)  # a drain: TERMINATING, slices moved, then exit
        assert cluster.wait_exit(1) == 0
        cluster.wait_covered([a for i, a in enumerate(cluster.addresses) if i != 1])
    assert not any(s.process.alive() for s in cluster.servers)
    assert cluster.assigner_process is not None
    assert not cluster.assigner_process.alive()


def test_an_embedded_assigner_rebuilds_the_assignment_after_its_member_restarts(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ratekeeper.server.slicelet", reason="serve --join is not merged yet")
    with Cluster(
        3, log_dir=tmp_path, heartbeat_interval=0.1, unhealthy_after=0.6, embedded=True
    ) as cluster:
        assert cluster.assigner == cluster.addresses[0]
        assert cluster.assigner_process is None
        before = cluster.status().assignment.generation
        cluster.kill(2)
        cluster.wait_covered(cluster.addresses[:2], timeout=10)
        cluster.restart(2)
        cluster.restart(0)  # the assigner too: soft state, rebuilt from heartbeats
        after = cluster.status().assignment.generation
        assert after.incarnation > before.incarnation
        assert set(cluster.status().assignment.servers) == set(cluster.addresses)


def test_a_restarted_assigner_rebuilds_the_assignment_and_moves_no_key(tmp_path: Path) -> None:
    pytest.importorskip("ratekeeper.server.slicelet", reason="serve --join is not merged yet")
    with Cluster(3, log_dir=tmp_path, heartbeat_interval=0.1, unhealthy_after=0.6) as cluster:
        status = cluster.status()
        cluster.wait_held(status)  # what the members hold is what a new assigner rebuilds from
        before = assignment_from_wire(status.assignment)
        cluster.kill_assigner(0)
        cluster.restart_assigner(0)
        after = assignment_from_wire(cluster.wait_covered().assignment)
        assert after.generation.incarnation > before.generation.incarnation
        assert moves(before, after) == ()


def test_scaling_from_two_to_four_members_is_one_assignment_round(tmp_path: Path) -> None:
    pytest.importorskip("ratekeeper.server.slicelet", reason="serve --join is not merged yet")
    # two processes started together become RUNNING a few hundred ms apart on a loaded
    # machine: a join batch of 3 s puts both joins in one round
    with Cluster(2, log_dir=tmp_path, heartbeat_interval=0.1, join_batch=3.0) as cluster:
        before = cluster.status().assignment.generation.number
        cluster.add_server(wait=False)
        cluster.add_server(wait=False)
        after = cluster.wait_covered(cluster.addresses)
        assert len(after.assignment.servers) == 4
        assert after.assignment.generation.number == before + 1
        assert all(m.slices > 0 for m in after.members)
