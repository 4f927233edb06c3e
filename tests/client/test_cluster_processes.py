"""A Limiter against a real 3-member cluster (``ratekeeper assigner`` and three ``ratekeeper
serve --join`` processes): pointed at one member (or at the assigner) it learns the assignment
and routes every key to its owner — the owners' ``ratekeeper_misdirected_keys_total`` stays 0 —
and keeps deciding and reporting when a member, the one it was given included, is killed."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from ratekeeper import Limiter
from ratekeeper.testing.cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEYS = [f"user{i}" for i in range(300)]


def misdirected(cluster: Cluster, members: list[int]) -> float:
    """The sum of ``ratekeeper_misdirected_keys_total`` over ``members``."""
    total = 0.0
    for i in members:
        port = cluster.servers[i].http_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            for line in page.read().decode().splitlines():
                if line.startswith("ratekeeper_misdirected_keys_total"):
                    total += float(line.split()[-1])
    return total


def eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


def report_all(lim: Limiter) -> int:
    admitted = sum(lim.allow(key) for key in KEYS)
    lim.flush()
    return admitted


def test_any_member_is_the_entry_point_and_a_killed_member_is_survived(tmp_path: Path) -> None:
    with Cluster(3, log_dir=tmp_path, heartbeat_interval=0.1, unhealthy_after=0.8) as cluster:
        members = cluster.addresses
        with Limiter(cluster.assigner, report_interval=0.05) as via_assigner:
            assert via_assigner.wait_ready(20)  # the assigner serves Watch, not reports
            assert set(via_assigner.servers) == set(members)
        with Limiter(members[1], limit="100000/s", report_interval=0.05) as lim:
            assert lim.wait_ready(20)
            assert lim.stats.owners == 3
            assert set(lim.servers) == set(members)
            for _ in range(3):
                assert report_all(lim) == len(KEYS)
            assert misdirected(cluster, [0, 1, 2]) == 0  # every key went to its owner

            cluster.kill(1, signal.SIGKILL)  # the member the client was given
            killed = time.monotonic()
            generation = lim.stats.generation
            # decisions never wait and never raise while the cluster heals
            while lim.stats.generation == generation or lim.stats.owners != 2:
                assert report_all(lim) == len(KEYS)
                time.sleep(0.02)
            # the assigner's 0.8 s timeout, then one long poll (slack for a loaded machine)
            failover = time.monotonic() - killed
            print(f"client routed by the survivors {failover:.2f} s after the kill")
            assert failover < 10
            cluster.wait_covered([members[0], members[2]])
            eventually(lambda: lim.ready, "ready on the survivors")
            lim.flush()  # a cycle routed by the survivors' assignment: the dead one is let go
            assert set(lim.servers) == {members[0], members[2]}
            before = misdirected(cluster, [0, 2])
            for _ in range(3):
                assert report_all(lim) == len(KEYS)
            assert misdirected(cluster, [0, 2]) == before  # no key sent to a non-owner
