"""Servers joining a real assigner over loopback gRPC: membership, ownership at the gate,
misdirected reports, and the AssignerService every member serves."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import grpc.aio
import pytest

from ratekeeper.assigner.server import AssignerService, running_assigner
from ratekeeper.backends.store import Counter
from ratekeeper.core.assignment import pieces
from ratekeeper.core.limits import Limit, Unit
from ratekeeper.core.slices import HASH_SPACE, Assignment, Slice
from ratekeeper.proto.assignment import (
    assignment_from_wire,
    generation_from_wire,
    generation_to_wire,
    update_from_wire,
)
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.server.membership import State
from ratekeeper.testing.procs import free_port

from .joining import ASSIGNER, Join, agreed, cluster, settled, slicelet_of, until


def key_owned_by(assignment: Assignment, owner: str) -> tuple[str, str]:
    for i in range(10_000):
        entry = ("user", f"u{i}")
        limit = Limit(10, Unit.MINUTE)
        if assignment.owner_of(Counter("api", (entry,), limit).key_hash) == owner:
            return entry
    raise AssertionError(f"no key for {owner}")


def report(entry: tuple[str, str], admitted: int, known: Any = None) -> pb.ReportRequest:
    request = pb.ReportRequest(
        client_id="test-client",
        interval_ns=100_000_000,
        keys=[pb.KeyReport(domain="api", entries=[pb.Entry(key=entry[0], value=entry[1])],
                           admitted=admitted)],
    )  # fmt: skip
    if known is not None:
        request.generation.CopyFrom(generation_to_wire(known))
    return request


async def test_a_server_joining_an_assigner_becomes_running_and_owns_the_space(
    assigner: AssignerService, join: Join
) -> None:
    a = await join(assigner.address)
    s = slicelet_of(a)
    await until(lambda: agreed(a) is not None)
    assert s.state is State.RUNNING
    assert s.view.owned() == (Slice(0, HASH_SPACE),)
    assert s.address == f"127.0.0.1:{a.grpc_port}"
    (member,) = assigner.machine.members
    assert member.address == s.address
    assert member.incarnation_id == s.incarnation_id


async def test_two_servers_split_the_space_and_agree_on_it(
    assigner: AssignerService, join: Join
) -> None:
    a, b = await join(assigner.address), await join(assigner.address)
    held = await settled(a, b)
    mine_a, mine_b = slicelet_of(a).view.owned(), slicelet_of(b).view.owned()
    assert mine_a
    assert mine_b
    assert sorted((*mine_a, *mine_b), key=lambda p: p.low) == [p for p, _ in pieces(held)]


async def test_a_report_to_the_non_owner_is_applied_counted_and_answered_with_the_assignment(
    assigner: AssignerService, join: Join
) -> None:
    a, b = await join(assigner.address), await join(assigner.address)
    held = await settled(a, b)
    entry = key_owned_by(held, slicelet_of(b).address)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as channel:
        call = aio_report_call(channel)
        stray = await call(report(entry, admitted=12))  # routed by no assignment at all
        assert stray.instructions[0].reject_for_ns > 0  # applied: 12 of 10 a minute, in debt
        assert generation_from_wire(stray.generation) == held.generation
        assert update_from_wire(stray.assignment) == held
        metrics = a.components.metrics.render().decode()
        assert "ratekeeper_misdirected_keys_total 1.0" in metrics
        # routed by the held generation to the owner's neighbour: still counted, no assignment
        again = await call(report(entry, admitted=1, known=held.generation))
        assert not again.HasField("assignment")
        assert "ratekeeper_misdirected_keys_total 2.0" in a.components.metrics.render().decode()
        # to a key the member owns: not misdirected
        own = key_owned_by(held, slicelet_of(a).address)
        await call(report(own, admitted=1, known=held.generation))
        assert "ratekeeper_misdirected_keys_total 2.0" in a.components.metrics.render().decode()


async def test_watch_and_status_through_a_member_and_joining_through_one(
    assigner: AssignerService, join: Join
) -> None:
    a = await join(assigner.address)
    await until(lambda: agreed(a) is not None)
    member = f"127.0.0.1:{a.grpc_port}"
    async with grpc.aio.insecure_channel(member) as channel:
        calls = AssignerCallsAio(channel)
        first = await calls.watch(cluster_pb2.WatchRequest(wait_ns=0), timeout=2)
        held = update_from_wire(first.update)
        assert held == agreed(a)
        assert isinstance(held, Assignment)
        # a long poll held until the member adopts a newer assignment: a server joining
        # through the member (its heartbeats relayed to the assigner)
        known = cluster_pb2.WatchRequest(
            known=generation_to_wire(held.generation), wait_ns=5_000_000_000
        )
        waiting = asyncio.ensure_future(calls.watch(known, timeout=6))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        b = await join(member)
        await until(lambda: agreed(a, b) is not None)
        newer = update_from_wire((await waiting).update)
        assert newer is not None
        assert newer.generation > held.generation
        assert slicelet_of(b).state is State.RUNNING
        status = await calls.status(cluster_pb2.StatusRequest(), timeout=2)
        assert {m.address for m in status.members} == {slicelet_of(r).address for r in (a, b)}
        assert all(m.state == cluster_pb2.RUNNING for m in status.members)
        assert assignment_from_wire(status.assignment) == agreed(a, b)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Assignment | None, Assignment]] = []

    async def assignment_changed(self, before: Assignment | None, after: Assignment) -> None:
        await asyncio.sleep(0.05)  # a slow listener delays no heartbeat
        self.seen.append((before, after))


async def test_listeners_hear_every_change_in_order_and_a_drained_member_leaves(
    assigner: AssignerService, join: Join
) -> None:
    a = await join(assigner.address)
    recorder = Recorder()
    slicelet_of(a).listen(recorder)
    b = await join(assigner.address)
    await until(lambda: agreed(a, b) is not None)
    assert await slicelet_of(b).drain(3.0)
    assert slicelet_of(b).state is State.TERMINATING
    alone = frozenset({slicelet_of(a).address})
    await until(lambda: (held := slicelet_of(a).assignment) is not None and held.servers == alone)
    await until(lambda: bool(recorder.seen) and recorder.seen[-1][1] is slicelet_of(a).assignment)
    for (_, previous), (before, _) in zip(recorder.seen, recorder.seen[1:], strict=False):
        assert before is previous
    generations = [after.generation for _, after in recorder.seen]
    assert generations == sorted(set(generations))


async def test_an_unreachable_assigner_keeps_the_assignment_and_is_retried(
    join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_assigner(ASSIGNER) as first:
        address = first.address
        a = await join(address)
        held = await settled(a)
    await asyncio.sleep(1.0)  # several failed heartbeats and watches
    assert slicelet_of(a).assignment is held
    warnings = [r for r in caplog.records if "heartbeat to" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: not one per retry
    restarted = dataclasses.replace(ASSIGNER, listen=address)
    async with running_assigner(restarted) as second:
        await until(lambda: agreed(a) is not None and agreed(a) == second.machine.current)
        new = agreed(a)
        assert new is not None
        assert held is not None
        assert new.generation > held.generation


async def test_a_server_embedding_the_assigner_owns_the_space_then_shares_it(join: Join) -> None:
    first = await join("", assigner_embedded=True, assigner=ASSIGNER)
    await until(lambda: agreed(first) is not None)
    assigner = first.components.assigner
    assert assigner is not None
    assert assigner.address == slicelet_of(first).address
    second = await join(slicelet_of(first).address)
    await until(lambda: agreed(first, second) is not None)
    assert slicelet_of(second).view.owned()
    assert agreed(first, second) == assigner.machine.current


async def test_a_member_whose_relay_died_finds_the_assigner_through_another(
    assigner: AssignerService, join: Join
) -> None:
    a = await join(assigner.address)
    b = await join(assigner.address)
    c = await join(slicelet_of(b).address)  # through b
    await until(lambda: agreed(a, b, c) is not None)
    await b.stop(0)
    await asyncio.sleep(2 * ASSIGNER.unhealthy_after_s)  # long enough for c to be dropped
    assert slicelet_of(c).target == slicelet_of(a).address  # the next member it knew
    members = {m.address: m.state for m in assigner.machine.members}
    assert members.get(slicelet_of(c).address) is State.RUNNING
    await until(lambda: agreed(a, c) is not None)


async def test_a_stopping_member_answers_held_watches_at_once(
    assigner: AssignerService, join: Join
) -> None:
    a = await join(assigner.address)
    held = await settled(a)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as channel:
        request = cluster_pb2.WatchRequest(
            known=generation_to_wire(held.generation), wait_ns=30_000_000_000
        )
        waiting = asyncio.ensure_future(AssignerCallsAio(channel).watch(request, timeout=40))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await a.stop(5.0)  # a grace far longer than the answer takes
        assert time.monotonic() - started < 2.0
        assert not (await waiting).HasField("update")


async def test_heartbeats_rotate_through_the_join_list_to_the_assigner_that_answers(
    assigner: AssignerService, join: Join
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    a = await join(f"{dead},{assigner.address}")
    await until(lambda: agreed(a) is not None)
    assert slicelet_of(a).target == assigner.address


async def test_with_the_assigner_gone_members_answer_status_from_what_they_hold_and_recover(
    join: Join,
) -> None:
    async with running_assigner(ASSIGNER) as first:
        address = first.address
        members = [await join(address) for _ in range(3)]
        await until(lambda: agreed(*members) is not None)
        held = agreed(*members)
    assert held is not None
    # heartbeats now fail and rotate through the members, each relaying to a dead assigner:
    # answers never wait on a relay longer than its timeout, and never on a closed channel
    async with grpc.aio.insecure_channel(f"127.0.0.1:{members[0].grpc_port}") as channel:
        calls = AssignerCallsAio(channel)
        for _ in range(8):
            started = time.monotonic()
            status = await calls.status(cluster_pb2.StatusRequest(), timeout=5)
            assert time.monotonic() - started < 2 * cluster("").heartbeat_timeout_s + 0.5
            assert assignment_from_wire(status.assignment) == held
            await asyncio.sleep(0.2)
    async with running_assigner(dataclasses.replace(ASSIGNER, listen=address)) as second:
        await until(lambda: agreed(*members) == second.machine.current, timeout=10)


async def test_members_told_to_join_each_other_refuse_to_relay_in_a_ring(
    join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    a = await join(f"127.0.0.1:{port}")  # b, not started yet
    b = await join(slicelet_of(a).address, grpc_port=port)
    await asyncio.sleep(1.0)
    assert slicelet_of(a).assignment is None
    assert slicelet_of(b).assignment is None
    assert any("without reaching an assigner" in r.getMessage() for r in caplog.records)
