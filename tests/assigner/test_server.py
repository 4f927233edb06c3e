"""AssignerService over real gRPC on loopback: heartbeats, the Watch long poll, Status, persist."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from ratekeeper.assigner.machine import AssignerMachine, Round
from ratekeeper.assigner.members import Heartbeat as MemberBeat
from ratekeeper.assigner.members import MemberState
from ratekeeper.assigner.server import AssignerService, Persist, running_assigner
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.core.assignment_diff import apply_update
from ratekeeper.core.slices import Assignment, Generation, even_split
from ratekeeper.proto.assignment import generation_to_wire, update_from_wire
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.transport.channels import open_aio_channel

FAST = AssignerSettings(
    listen="127.0.0.1:0",
    heartbeat_interval_s=0.05,
    unhealthy_after_s=0.4,
    min_interval_s=0.1,
    load_interval_s=30.0,
    settle_s=0.0,
)
NS = 1_000_000_000


class Member:
    """A member as the assigner sees one: heartbeats on request, holds what it is sent."""

    def __init__(self, calls: AssignerCallsAio, address: str, incarnation: str = "1") -> None:
        self.calls = calls
        self.address = address
        self.incarnation = incarnation
        self.held: Assignment | None = None

    async def beat(self, state: int = pb.RUNNING) -> pb.HeartbeatResponse:
        request = pb.HeartbeatRequest(
            address=self.address, state=state, incarnation_id=self.incarnation
        )
        if self.held is not None:
            request.known.CopyFrom(generation_to_wire(self.held.generation))
        response = await self.calls.heartbeat(request, timeout=5)
        update = update_from_wire(response.update)
        if update is not None:
            self.held = apply_update(self.held, update)
        return response


@pytest.fixture
async def assigner() -> AsyncIterator[AssignerService]:
    async with running_assigner(FAST) as service:
        yield service


@pytest.fixture
async def calls(assigner: AssignerService) -> AsyncIterator[AssignerCallsAio]:
    channel = open_aio_channel(assigner.address)
    yield AssignerCallsAio(channel)
    await channel.close()


async def test_a_heartbeat_is_answered_with_the_assignment_and_the_timeouts(
    calls: AssignerCallsAio,
) -> None:
    a = Member(calls, "127.0.0.1:9001")
    response = await a.beat()
    assert response.heartbeat_interval_ns == NS // 20
    assert response.unhealthy_after_ns == 4 * NS // 10
    assert a.held is not None
    assert a.held.servers == {"127.0.0.1:9001"}
    again = await a.beat()
    assert not again.HasField("update")  # up to date: nothing to send


async def test_the_timer_publishes_the_first_assignment_once_settled() -> None:
    settings = AssignerSettings(
        listen="127.0.0.1:0", heartbeat_interval_s=0.1, unhealthy_after_s=2.0, settle_s=0.3
    )
    async with running_assigner(settings, incarnation=1) as service:
        channel = open_aio_channel(service.address)
        calls = AssignerCallsAio(channel)
        a = Member(calls, "127.0.0.1:9001")
        began = time.monotonic()
        await a.beat()
        assert a.held is None  # too early: the assigner is still hearing members out
        response = await calls.watch(pb.WatchRequest(wait_ns=5 * NS), timeout=10)
        assert update_from_wire(response.update) == even_split([a.address], Generation(1, 1))
        assert time.monotonic() - began < 2
        await channel.close()


async def test_a_join_reaches_a_waiting_watch_as_an_update(calls: AssignerCallsAio) -> None:
    a, b = Member(calls, "127.0.0.1:9001"), Member(calls, "127.0.0.1:9002")
    await a.beat()
    assert a.held is not None
    first = a.held
    watch = asyncio.ensure_future(
        calls.watch(
            pb.WatchRequest(known=generation_to_wire(first.generation), wait_ns=5 * NS), timeout=10
        )
    )
    await asyncio.sleep(0.1)
    assert not watch.done()  # nothing newer yet: held
    await b.beat()
    response = await asyncio.wait_for(watch, 5)
    update = update_from_wire(response.update)
    assert update is not None
    after = apply_update(first, update)
    assert after.servers == {"127.0.0.1:9001", "127.0.0.1:9002"}
    await b.beat()  # its join waited out the batch window: the next beat carries it
    assert b.held == after


async def test_a_watch_with_nothing_newer_answers_empty_after_its_wait(
    calls: AssignerCallsAio,
) -> None:
    a = Member(calls, "127.0.0.1:9001")
    await a.beat()
    assert a.held is not None
    known = generation_to_wire(a.held.generation)
    began = time.monotonic()
    response = await calls.watch(pb.WatchRequest(known=known, wait_ns=NS // 5), timeout=5)
    assert not response.HasField("update")
    assert 0.15 < time.monotonic() - began < 2
    # a caller without an assignment is answered the whole at once
    whole = await calls.watch(pb.WatchRequest(wait_ns=5 * NS), timeout=5)
    assert update_from_wire(whole.update) == a.held
    # a caller ahead of this assigner (a newer one existed) is not sent an older assignment
    ahead = pb.WatchRequest(known=generation_to_wire(Generation(2**62, 0)), wait_ns=0)
    assert not (await calls.watch(ahead, timeout=5)).HasField("update")


async def test_a_silent_member_loses_its_slices_within_the_timeout(
    calls: AssignerCallsAio,
) -> None:
    a, b = Member(calls, "127.0.0.1:9001"), Member(calls, "127.0.0.1:9002")
    await a.beat()
    await b.beat()
    while a.held is None or a.held.servers != {a.address, b.address}:
        await asyncio.sleep(0.02)  # b's join waits out the batch window after a's
        await a.beat()
        await b.beat()
    began = time.monotonic()
    while a.held.servers != {a.address}:  # b is silent from now on
        assert time.monotonic() - began < 2, "b's slices were not reassigned"
        await asyncio.sleep(0.05)
        await a.beat()
    assert 0.35 < time.monotonic() - began < 1.5  # the timeout, plus a loaded machine
    status = await calls.status(pb.StatusRequest(), timeout=5)
    assert [m.address for m in status.members] == [a.address]


async def test_status_lists_members_states_slices_and_the_assignment(
    calls: AssignerCallsAio, assigner: AssignerService
) -> None:
    a, b = Member(calls, "127.0.0.1:9001"), Member(calls, "127.0.0.1:9002")
    await a.beat()
    await b.beat(pb.NOT_READY)
    status = await calls.status(pb.StatusRequest(), timeout=5)
    assert status.assigner == assigner.address
    by_address = {m.address: m for m in status.members}
    assert by_address[a.address].state == pb.RUNNING
    assert by_address[a.address].slices == 1
    assert by_address[b.address].state == pb.NOT_READY
    assert by_address[b.address].slices == 0
    assert list(status.assignment.servers) == [a.address]
    assert status.imbalance == 0  # no load reported yet
    load = pb.SliceLoad(low=0, high=0, load=50.0)  # high 0: the end of the space
    request = pb.HeartbeatRequest(address=a.address, state=pb.RUNNING, incarnation_id="1")
    request.load.append(load)
    await calls.heartbeat(request, timeout=5)
    status = await calls.status(pb.StatusRequest(), timeout=5)
    assert {m.address: m.load for m in status.members}[a.address] == pytest.approx(50.0)
    assert status.imbalance == pytest.approx(1.0)


async def test_bad_and_stale_heartbeats_are_refused(calls: AssignerCallsAio) -> None:
    bad = [
        pb.HeartbeatRequest(address="no-port", state=pb.RUNNING, incarnation_id="1"),
        pb.HeartbeatRequest(address="127.0.0.1:9001", state=pb.RUNNING),
        pb.HeartbeatRequest(
            address="127.0.0.1:9001",
            incarnation_id="1",
            load=[pb.SliceLoad(low=5, high=5, load=1.0)],
        ),
        pb.HeartbeatRequest(
            address="127.0.0.1:9001",
            incarnation_id="1",
            load=[pb.SliceLoad(low=0, high=0, load=float("nan"))],
        ),
        pb.HeartbeatRequest(
            address="127.0.0.1:9001",
            incarnation_id="1",
            load=[pb.SliceLoad(low=0, high=0, load=1e300)],
        ),
        pb.HeartbeatRequest(address="127.0.0.1:9001", incarnation_id="1", state=7),  # type: ignore[arg-type]
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await calls.heartbeat(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    await Member(calls, "127.0.0.1:9001", "old").beat()
    await Member(calls, "127.0.0.1:9001", "new").beat()
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await Member(calls, "127.0.0.1:9001", "old").beat()
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_watchers_beyond_the_bound_are_refused() -> None:
    settings = AssignerSettings(
        listen="127.0.0.1:0", heartbeat_interval_s=0.05, unhealthy_after_s=0.4, max_watchers=1
    )
    async with running_assigner(settings) as service:
        channel = open_aio_channel(service.address)
        calls = AssignerCallsAio(channel)
        held = asyncio.ensure_future(calls.watch(pb.WatchRequest(wait_ns=NS), timeout=5))
        while service.watchers < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await calls.watch(pb.WatchRequest(wait_ns=NS), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not (await held).HasField("update")  # no member, no assignment
        await channel.close()


async def test_an_assignment_is_published_only_once_persisted() -> None:
    seen: list[Assignment] = []
    allow = asyncio.Event()
    answers = iter([False])

    async def persist(assignment: Assignment) -> bool:
        seen.append(assignment)
        await allow.wait()
        return next(answers, True)

    chosen: Persist = persist
    async with running_assigner(FAST, persist=chosen, incarnation=9) as service:
        channel = open_aio_channel(service.address)
        calls = AssignerCallsAio(channel)
        a = Member(calls, "127.0.0.1:9001")
        beat = asyncio.ensure_future(a.beat())
        while not seen:
            await asyncio.sleep(0.01)
        status = await calls.status(pb.StatusRequest(), timeout=5)
        assert not status.HasField("assignment")  # proposed, not yet persisted: unpublished
        allow.set()
        await beat
        assert a.held is None  # the first attempt was refused by persist
        while a.held is None:
            await asyncio.sleep(0.02)
            await a.beat()
        assert a.held.generation == Generation(9, 1)
        assert [s.generation for s in seen] == [Generation(9, 1), Generation(9, 1)]
        assert a.held.starts == (0,)
        await channel.close()


async def test_heartbeats_are_answered_while_a_proposal_is_being_persisted() -> None:
    release = asyncio.Event()

    async def slow(assignment: Assignment) -> bool:
        await release.wait()
        return True

    async with running_assigner(FAST, persist=slow) as service:
        channel = open_aio_channel(service.address)
        calls = AssignerCallsAio(channel)
        a, b = Member(calls, "127.0.0.1:9001"), Member(calls, "127.0.0.1:9002")
        first = asyncio.ensure_future(a.beat())  # proposes, and waits on the slow store
        await asyncio.sleep(0.1)
        began = time.monotonic()
        await b.beat()  # not held behind the store
        assert time.monotonic() - began < 0.5
        assert b.held is None
        release.set()
        await first
        while b.held is None or b.held.servers != {a.address, b.address}:
            await asyncio.sleep(0.02)
            await b.beat()
        await channel.close()


class FailingOnce(AssignerMachine):
    """A machine whose first round fails inside the rebalancer (no member to give slices to)."""

    failed = False

    def begin(self, now: int) -> Round | None:
        job = super().begin(now)
        if job is None or self.failed:
            return job
        self.failed = True
        broken = dataclasses.replace(job, running=frozenset())
        self._computing = broken
        return broken


async def test_a_round_that_fails_is_logged_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [0]
    machine = FailingOnce(FAST.machine(), incarnation=3, now=0)
    service = AssignerService(machine, FAST, address="x", clock=lambda: clock[0])
    machine.heartbeat(MemberBeat("127.0.0.1:9001", MemberState.RUNNING, "1"), 0)
    await service.advance()
    assert "round 3.1 failed" in caplog.text
    assert machine.current is None
    assert machine.next_deadline() == FAST.machine().heartbeat_interval_ns
    clock[0] = FAST.machine().heartbeat_interval_ns
    machine.heartbeat(MemberBeat("127.0.0.1:9001", MemberState.RUNNING, "1"), clock[0])
    await service.advance()
    assert machine.current == even_split(["127.0.0.1:9001"], Generation(3, 1))
