"""Real Envoy (ratelimit filter) → one member of a two-member ratekeeper cluster.

Envoy runs docs/envoy/ratelimit_cluster.yaml itself, the file docs/envoy.md publishes, with only
its four port numbers replaced: if the guide stops working, this test fails. The first test
runs it against a real-process cluster (``ratekeeper assigner`` and two ``serve --join``, the
assignment the assigner's); the others against two in-process members holding a fixed
assignment (the hash space split evenly), so a test can stop the owner and read each member's
store. The user each test sends is owned by the member Envoy does not call, so every answer
Envoy enforces was forwarded. The policy has the shape of examples/config/rl.yaml (domain
``rl``, ``route=root`` then ``user``) with a per-second limit, so a test sees the bucket refill.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.core.slices import Assignment
from ratekeeper.proto.assignment import assignment_from_wire
from ratekeeper.testing.cluster import Cluster
from ratekeeper.testing.envoy_guide import templated
from ratekeeper.testing.envoy_proxy import envoy_on_file, upstream_http, user_status
from ratekeeper.testing.procs import free_port
from ratekeeper.testing.server_process import metric_samples
from tests.server.test_forwarding import Member, assignment_of, members, owned_by

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "envoy" / "ratelimit_cluster.yaml"
#: The ports docs/envoy/ratelimit_cluster.yaml names, by role.
CLUSTER_PORTS = {"listen": 10000, "admin": 9901, "ratekeeper": 8081, "upstream": 9000}
RATE = 10  # per second; the burst is the same
POLICY = f"""\
domain: rl
descriptors:
  - key: route
    value: root
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: {RATE}}}
"""
ROUTE = (("route", "root"),)


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with upstream_http() as port:
        yield port


@contextlib.contextmanager
def guide_envoy(
    member: Member | str, upstream: int, logs: Path, name: str = "envoy"
) -> Iterator[int]:
    """Envoy on the guide's file, calling ``member`` (or a member's address); yields its
    listener port."""
    address = member if isinstance(member, str) else member.address
    port = int(address.rpartition(":")[2])
    ports = {"listen": free_port(), "admin": free_port(), "ratekeeper": port, "upstream": upstream}
    config = templated(GUIDE.read_text(), CLUSTER_PORTS, ports)
    with envoy_on_file(config, ports["listen"], ports["admin"], logs, name):
        yield ports["listen"]


async def status(port: int, user: str | None) -> int:
    """One request through Envoy, off the event loop the members answer on."""
    return await asyncio.to_thread(user_status, port, user)


def user_owned_by(member: Member, owner: Member, start: int = 0) -> str:
    return owned_by(assignment_of(member), owner.address, "user", start, "rl", ROUTE)


def test_the_guide_on_a_real_cluster(upstream: int, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "rl.yaml").write_text(POLICY)
    logs = tmp_path / "logs"
    with Cluster(2, log_dir=logs, config=policy) as cluster:
        assignment: Assignment = assignment_from_wire(cluster.status().assignment)
        user = owned_by(assignment, cluster.addresses[1], "user", 0, "rl", ROUTE)
        with guide_envoy(cluster.addresses[0], upstream, logs) as port:
            assert user_status(port, None) == 200
            burst = [user_status(port, user) for _ in range(3 * RATE)]
            assert 429 in burst, burst
            assert burst.count(200) >= RATE
            entry, owner = (server.http_port for server in cluster.servers)
            assert rule_hits(owner) == 3 * RATE  # every request counted by the owner
            assert rule_hits(entry) == 0
            time.sleep(1.2)
            assert user_status(port, user) == 200


def rule_hits(http_port: int) -> float:
    return sum(
        s.value for s in metric_samples(http_port) if s.name == "ratekeeper_rule_total_hits_total"
    )


async def test_the_owners_limit_through_the_member_envoy_calls(
    upstream: int, tmp_path: Path
) -> None:
    async with members(tmp_path / "members", POLICY, time.time_ns) as (a, b):
        user = user_owned_by(a, b)
        with guide_envoy(a, upstream, tmp_path / "logs") as port:
            assert await status(port, None) == 200  # no x-user: no descriptor, never limited
            burst = [await status(port, user) for _ in range(3 * RATE)]
            assert 429 in burst, burst
            assert burst.count(200) >= RATE
            # The owner counted every request; the member Envoy calls counted none.
            assert await b.counters() == {("rl", (*ROUTE, ("user", user)))}
            assert await a.counters() == set()
            assert a.metric("ratekeeper_forward_errors_total") == 0
            await asyncio.sleep(1.2)
            assert await status(port, user) == 200


async def test_envoys_on_different_members_share_one_limit(upstream: int, tmp_path: Path) -> None:
    async with members(tmp_path / "members", POLICY, time.time_ns) as (a, b):
        user = user_owned_by(a, b)
        logs = tmp_path / "logs"
        with (
            guide_envoy(a, upstream, logs, "envoy-a") as via_a,
            guide_envoy(b, upstream, logs, "envoy-b") as via_b,
        ):
            began = time.monotonic()
            answers = [await status(port, user) for _ in range(RATE) for port in (via_a, via_b)]
            elapsed = time.monotonic() - began
        # One bucket for both Envoys: its burst, plus what it refilled meanwhile.
        assert answers.count(200) <= RATE + int(elapsed * RATE) + 1, (answers, elapsed)
        assert 429 in answers


async def test_an_owner_that_is_down_fails_open(upstream: int, tmp_path: Path) -> None:
    async with members(tmp_path / "members", POLICY, time.time_ns) as (a, b):
        user = user_owned_by(a, b)
        with guide_envoy(a, upstream, tmp_path / "logs") as port:
            await b.server.stop(0)
            burst = [await status(port, user) for _ in range(2 * RATE)]
            assert burst == [200] * (2 * RATE)  # the member answers per FAIL_CLOSED (open)
            assert a.metric("ratekeeper_forward_errors_total") == 2 * RATE
