"""The in-process replica set: real listeners on free ports, one clock, stop and restart."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.testing.clock import ManualClock
from ratekeeper.testing.procs import http_get
from ratekeeper.testing.replicas import Replicas, ThreadedReplicas
from tests.conftest import StartReplicas

POLICY = """
domain: test
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 2}
"""

OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


def _request(user: str) -> rls_pb2.RateLimitRequest:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value=user)
    descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
    return rls_pb2.RateLimitRequest(domain="test", descriptors=[descriptor], hits_addend=1)


async def _codes(target: str, user: str, calls: int) -> list[int]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        return [(await stub.ShouldRateLimit(_request(user))).overall_code for _ in range(calls)]


async def test_each_replica_counts_on_its_own(replicas: StartReplicas) -> None:
    fleet = await replicas(3, POLICY, clock=ManualClock())
    assert len(set(fleet.targets)) == 3
    for target in fleet.targets:  # memory stores: every replica admits the full limit
        assert await _codes(target, "alice", 3) == [OK, OK, OVER]


async def test_a_stopped_replica_comes_back_on_its_ports(replicas: StartReplicas) -> None:
    clock = ManualClock()
    fleet = await replicas(2, POLICY, clock=clock)
    first = fleet[0].target
    await fleet.stop(0)
    assert not fleet[0].running
    with pytest.raises(grpc.aio.AioRpcError):
        await _codes(first, "bob", 1)
    assert await _codes(fleet[1].target, "bob", 1) == [OK]  # the other one still serves
    await fleet.start(0)
    assert fleet[0].target == first
    assert await _codes(first, "bob", 1) == [OK]  # a new process's memory: a fresh bucket


async def test_replicas_share_the_clock_they_are_given(replicas: StartReplicas) -> None:
    clock = ManualClock()
    fleet = await replicas(1, POLICY, clock=clock)
    assert await _codes(fleet[0].target, "carol", 3) == [OK, OK, OVER]
    clock.advance(60)
    assert await _codes(fleet[0].target, "carol", 1) == [OK]


def test_threaded_replicas_serve_blocking_callers(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    with ThreadedReplicas(Replicas(2, tmp_path)) as fleet:
        for node in fleet.nodes:
            status, _, _ = http_get(node.http_port, "/healthcheck")
            assert status == 200
        fleet.stop(1)
        assert not fleet.nodes[1].running
    assert not any(node.running for node in fleet.nodes)


async def test_a_set_needs_a_replica(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        Replicas(0, tmp_path)
