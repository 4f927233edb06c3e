"""Elected assigners on a real etcd, in this process: one leads, a follower passes calls on,
and a successor resumes the stored assignment — same slices, higher incarnation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from ratekeeper.assigner.election import ElectionSettings
from ratekeeper.assigner.etcd_coordination import EtcdCoordination, parse_endpoints
from ratekeeper.assigner.ha import HaAssigner, decode_assignment, running_ha_assigner
from ratekeeper.errors import ConfigError
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.testing.etcd_server import EtcdServer
from ratekeeper.transport.channels import open_aio_channel
from tests.assigner.test_server import FAST, Member

ELECTION = ElectionSettings.for_ttl(2)


@contextlib.asynccontextmanager
async def elected(etcd: EtcdServer) -> AsyncIterator[HaAssigner]:
    coordination = EtcdCoordination(parse_endpoints(etcd.endpoint), prefix="/ha-test")
    async with running_ha_assigner(FAST, coordination, ELECTION) as assigner:
        yield assigner


async def _until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _leader_of(*assigners: HaAssigner) -> HaAssigner:
    await _until(lambda: sum(a.leading for a in assigners) == 1)
    return next(a for a in assigners if a.leading)


async def test_one_leads_a_follower_passes_heartbeats_on_and_a_successor_resumes(
    etcd: EtcdServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one = await stack.enter_async_context(elected(etcd))
        two = await stack.enter_async_context(elected(etcd))
        leader = await _leader_of(one, two)
        follower = two if leader is one else one
        channel = open_aio_channel(follower.address)
        stack.push_async_callback(channel.close, None)
        members = [Member(AssignerCallsAio(channel), f"127.0.0.1:{9100 + i}") for i in range(3)]

        async def beat_all() -> None:
            for member in members:
                await member.beat()

        await beat_all()  # through the follower, to the leader
        await _until(lambda: leader.leading and members[0].held is not None, 5)
        for _ in range(10):
            await beat_all()
            await asyncio.sleep(0.05)
        before = members[0].held
        assert before is not None
        assert before.servers == {m.address for m in members}

        stored = await EtcdCoordination(parse_endpoints(etcd.endpoint), "/ha-test").load()
        assert stored is not None
        assert decode_assignment(stored) == before  # stored before it was published

        # The leader steps down (as on SIGTERM): the follower takes over and resumes.
        await leader.resign()
        await _until(lambda: follower.leading, ELECTION.ttl_s + 2)
        direct = open_aio_channel(follower.address)
        stack.push_async_callback(direct.close, None)
        for member in members:
            member.calls = AssignerCallsAio(direct)
        await beat_all()
        after = members[0].held
        assert after is not None
        assert after.generation.incarnation > before.generation.incarnation
        assert dataclasses.replace(after, generation=before.generation) == before


async def test_a_leader_cut_off_from_etcd_stops_leading_in_time_and_recovers(
    etcd: EtcdServer,
) -> None:
    async with elected(etcd) as only:
        await _until(lambda: only.leading)
        channel = open_aio_channel(only.address)
        member = Member(AssignerCallsAio(channel), "127.0.0.1:9200")
        etcd.pause()  # the lease cannot be renewed: the leader must stop leading in time
        try:
            await _until(lambda: not only.leading, ELECTION.ttl_s + 1)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await member.beat()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            etcd.resume()
        await _until(lambda: only.leading, ELECTION.ttl_s + 5)  # and recovers on its own
        await member.beat()
        await channel.close(None)


@pytest.mark.parametrize("ttl", [1, 0])
def test_a_ttl_below_two_seconds_is_refused(ttl: int) -> None:
    with pytest.raises(ConfigError):
        ElectionSettings.for_ttl(ttl)
