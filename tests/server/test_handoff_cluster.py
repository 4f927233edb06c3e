"""Hand-off as the server wires it: two in-process members joined to a real assigner over
loopback; stopping one drains it, and the keys it held in debt are in debt on the other."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc.aio
import pytest

from ratekeeper.assigner.server import AssignerService, running_assigner
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.server.app import Replica, build
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ClusterSettings, ServerSettings

CONFIG = """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 10}
"""
ASSIGNER = AssignerSettings(
    listen="127.0.0.1:0",
    heartbeat_interval_s=0.1,
    unhealthy_after_s=1.0,
    settle_s=0.0,
    min_interval_s=0.2,
    load_interval_s=60.0,
)


@pytest.fixture
async def assigner() -> AsyncIterator[AssignerService]:
    async with running_assigner(ASSIGNER) as service:
        yield service


async def join(tmp_path: Path, address: str) -> Replica:
    (tmp_path / "api.yaml").write_text(CONFIG)
    settings = with_options(ServerSettings(), grpc_port=0, http_port=0, config=str(tmp_path))
    cluster = ClusterSettings(
        join=address,
        heartbeat_interval_s=0.1,
        heartbeat_timeout_s=0.5,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        watch_wait_s=2.0,
        drain_timeout_s=3.0,
    )
    replica = Replica(build(dataclasses.replace(settings, cluster=cluster)))
    await replica.start()
    return replica


def held(replica: Replica) -> Assignment | None:
    slicelet = replica.components.slicelet
    assert slicelet is not None
    return slicelet.assignment


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def report(users: list[str], admitted: int) -> pb.ReportRequest:
    return pb.ReportRequest(
        client_id="test",
        keys=[
            pb.KeyReport(domain="api", entries=[pb.Entry(key="user", value=u)], admitted=admitted)
            for u in users
        ],
    )


async def test_a_stopped_member_hands_its_keys_in_debt_to_the_other(
    assigner: AssignerService, tmp_path: Path
) -> None:
    a, b = await join(tmp_path, assigner.address), await join(tmp_path, assigner.address)
    address = {r: f"127.0.0.1:{r.grpc_port}" for r in (a, b)}

    def split() -> bool:
        ha, hb = held(a), held(b)
        return ha is not None and ha == hb and ha.servers == set(address.values())

    await until(split)
    assignment = held(a)
    assert assignment is not None
    users = [f"u{i}" for i in range(200)]
    on_a = [
        u
        for u in users
        if assignment.owner_of(key_hash(canonical_bytes("api", (("user", u),)))) == address[a]
    ]
    assert on_a
    try:
        async with grpc.aio.insecure_channel(address[a]) as channel:
            answer = await aio_report_call(channel)(report(on_a, 25))  # 25 of 10/min: in debt
        assert all(i.reject_for_ns > 60 * NS_PER_SECOND for i in answer.instructions)
        await a.stop(0)  # drains: the assigner moves a's slices to b, a hands them off
        assert held(b) is not None
        async with grpc.aio.insecure_channel(address[b]) as channel:
            answer = await aio_report_call(channel)(report(on_a, 0))
        assert all(i.reject_for_ns > 60 * NS_PER_SECOND for i in answer.instructions)
        metrics = b.components.metrics.render().decode()
        assert 'ratekeeper_handoff_seconds_count{outcome="warm"}' in metrics
    finally:
        await b.stop(0)
