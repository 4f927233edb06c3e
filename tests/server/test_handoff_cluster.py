"""Hand-off as the server wires it: two in-process members joined to a real assigner over
loopback; stopping one drains it, and the keys it held in debt are in debt on the other."""

from __future__ import annotations

import grpc.aio

from ratekeeper.assigner.server import AssignerService
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.server.app import Replica
from ratekeeper.server.slicelet import Slicelet

from .joining import Join, settled, slicelet_of


def held(replica: Replica) -> Assignment | None:
    slicelet: Slicelet = slicelet_of(replica)
    return slicelet.assignment


def report(users: list[str], admitted: int) -> pb.ReportRequest:
    return pb.ReportRequest(
        client_id="test",
        keys=[
            pb.KeyReport(domain="api", entries=[pb.Entry(key="user", value=u)], admitted=admitted)
            for u in users
        ],
    )


async def test_a_stopped_member_hands_its_keys_in_debt_to_the_other(
    assigner: AssignerService, join: Join
) -> None:
    a, b = await join(assigner.address), await join(assigner.address)
    address = {r: f"127.0.0.1:{r.grpc_port}" for r in (a, b)}
    assignment = await settled(a, b)
    users = [f"u{i}" for i in range(200)]
    on_a = [
        u
        for u in users
        if assignment.owner_of(key_hash(canonical_bytes("api", (("user", u),)))) == address[a]
    ]
    assert on_a
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
