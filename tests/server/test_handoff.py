"""Hand-off between two in-process members over real gRPC on loopback: the counters of a moved
range arrive whole (every later decision is the one the old owner would have made, debt
included), in bounded chunks; reports that arrive before the transfer are merged stricter; a
range whose old owner is gone starts empty; a drain waits for its hand-offs; garbage is refused.
Assignments are made by hand (the slicelet announces real ones)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
from prometheus_client import CollectorRegistry

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.redis import RedisSettings, RedisStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.handoff_actions import HandoffTimings
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, even_split, single_owner
from ratekeeper.proto.handoff import SERVICE
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.server.handoff import Handoff, HandoffMetrics
from ratekeeper.testing.clock import ManualClock
from ratekeeper.testing.redis_server import RedisServer

MS = NS_PER_SECOND // 1000
FAST = HandoffTimings(timeout_ns=600 * MS, first_retry_ns=20 * MS, max_retry_ns=100 * MS)
LIMIT = Limit(10, Unit.SECOND)


@dataclass
class Member:
    address: str
    store: MemoryStore
    handoff: Handoff
    server: grpc.aio.Server
    registry: CollectorRegistry

    def observed(self, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "ratekeeper_handoff_seconds_count", {"outcome": outcome}
        )
        return value or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start_member(clock: Callable[[], int] | None = None, **kwargs: object) -> Member:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    address = f"127.0.0.1:{port}"
    store = MemoryStore()
    registry = CollectorRegistry()
    handoff = Handoff(
        store,
        lambda: address,
        metrics=HandoffMetrics(registry),
        clock=clock or ManualClock(),
        timings=FAST,
        **kwargs,  # type: ignore[arg-type]
    )
    server.add_generic_rpc_handlers((handoff.handler(),))
    await server.start()
    return Member(address, store, handoff, server, registry)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Member, Member, ManualClock]]:
    clock = ManualClock()
    a, b = await start_member(clock), await start_member(clock)
    yield a, b, clock
    for m in (a, b):
        await m.handoff.close()
        await m.server.stop(0)


def counters(n: int, limit: Limit = LIMIT) -> list[Counter]:
    return [Counter("d", (("user", f"u{i}"),), limit) for i in range(n)]


def owned_by(assignment: Assignment, owner: str, n: int, limit: Limit = LIMIT) -> list[Counter]:
    """``n`` counters whose keys ``owner`` holds in ``assignment``."""
    return [c for c in counters(20 * n + 20, limit) if assignment.owner_of(c.key_hash) == owner][:n]


def gen(number: int) -> Generation:
    return Generation(1, number)


async def settle(*members: Member) -> None:
    """Until no hand-off is pending on any of ``members``."""
    async with asyncio.timeout(5):
        while any(m.handoff.machine.outgoing or m.handoff.machine.incoming for m in members):
            await asyncio.sleep(0.005)


async def test_a_moved_range_decides_as_its_old_owner_would_have_debt_included(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    a, b, clock = pair
    keys = counters(40)
    now = clock()
    await a.store.debit([Hit(c, i % 25) for i, c in enumerate(keys)], now)  # many in debt
    reference = MemoryStore()
    await reference.import_(await a.store.export(0, HASH_SPACE, now), now)
    before, after = single_owner(a.address, gen(1)), even_split([a.address, b.address], gen(2))
    await b.handoff.assignment_changed(before, after)  # b first: the range is cold meanwhile
    await a.handoff.assignment_changed(before, after)
    await settle(a, b)
    moved = [c for c in keys if after.owner_of(c.key_hash) == b.address]
    assert moved
    assert len(b.store) == len(moved)
    assert len(a.store) == len(keys) - len(moved)  # a dropped what it handed off
    for step in range(5):
        clock.advance(0.3)
        hits = [Hit(c, step % 3) for c in moved]
        assert await b.store.hit(hits, clock()) == await reference.hit(hits, clock())
    assert a.observed("delivered") == 1
    assert b.observed("warm") == 1


async def test_a_key_in_debt_stays_in_debt_and_new_keys_start_full_once_warm(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    a, b, clock = pair
    before, after = single_owner(a.address, gen(1)), even_split([a.address, b.address], gen(2))
    keys = owned_by(after, b.address, 20)  # a keeps a half: it is not drained
    await a.store.debit([Hit(c, 30) for c in keys], clock())  # 2 periods of debt (the cap)
    await a.handoff.assignment_changed(before, after)
    await b.handoff.assignment_changed(before, after)  # the transfer arrived first: warm at once
    await settle(a, b)
    outcomes = await b.store.debit([Hit(c, 0) for c in keys], clock())
    assert all(not o.allowed and o.retry_after_ns > NS_PER_SECOND for o in outcomes)
    [fresh] = await b.store.hit([Hit(Counter("d", (("user", "new"),), LIMIT), 0)], clock())
    assert fresh.remaining == LIMIT.amount


async def test_reports_before_the_transfer_are_added_to_it(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    a, b, clock = pair
    before, after = single_owner(a.address, gen(1)), even_split([a.address, b.address], gen(2))
    [key] = owned_by(after, b.address, 1)
    await a.store.debit([Hit(key, 4)], clock())  # 6 left at a
    await b.handoff.assignment_changed(before, after)
    # A report reaches the new owner before the transfer: the range is cold, so the counter
    # starts empty (no fresh burst) and the debit takes it into debt.
    [meanwhile] = await b.store.debit([Hit(key, 2)], clock())
    assert meanwhile.remaining == 0
    await a.handoff.assignment_changed(before, after)
    await settle(a, b)
    [merged] = await b.store.hit([Hit(key, 0)], clock())
    assert merged.remaining == 4  # the old owner's 6 left, less the 2 reported meanwhile
    clock.advance(0.5)
    [later] = await b.store.hit([Hit(key, 0)], clock())
    assert later.remaining == 9


async def test_a_big_range_travels_in_chunks_and_is_warm_only_when_all_are_in() -> None:
    clock = ManualClock()
    a = await start_member(clock, max_message_bytes=2_000)
    b = await start_member(clock)
    try:
        before = single_owner(a.address, gen(1))
        after = even_split([a.address, b.address], gen(2))
        keys = owned_by(after, b.address, 600)
        await a.store.debit([Hit(c, 3) for c in keys], clock())
        await b.handoff.assignment_changed(before, after)
        await a.handoff.assignment_changed(before, after)
        await settle(a, b)
        assert len(b.store) == 600
        sent = a.registry.get_sample_value(
            "ratekeeper_handoff_counters_total", {"direction": "sent"}
        )
        assert sent == 600
        [fresh] = [
            c for c in counters(2000) if c not in keys and after.owner_of(c.key_hash) == b.address
        ][:1]
        [o] = await b.store.hit([Hit(fresh, 0)], clock())
        assert o.remaining == LIMIT.amount  # warm: a key the old owner did not hold is full
    finally:
        for m in (a, b):
            await m.handoff.close()
            await m.server.stop(0)


async def test_a_range_whose_old_owner_is_gone_starts_empty_and_is_lost() -> None:
    b = await start_member(time.time_ns)  # real time: the deadline must pass
    try:
        gone = f"127.0.0.1:{free_port()}"
        before, after = single_owner(gone, gen(1)), single_owner(b.address, gen(2))
        await b.handoff.assignment_changed(before, after)
        key = counters(1)[0]
        [o] = await b.store.debit([Hit(key, 1)], time.time_ns())
        assert not o.allowed  # no fresh burst: the bucket started at zero
        async with asyncio.timeout(5):
            while b.observed("lost") == 0:
                await asyncio.sleep(0.02)
        assert b.handoff.machine.incoming == ()
        [o] = await b.store.hit([Hit(counters(2)[1], 0)], time.time_ns())
        assert o.remaining < LIMIT.amount  # still cold: learning from the reports that follow
    finally:
        await b.handoff.close()
        await b.server.stop(0)


async def test_a_drain_waits_for_its_hand_offs_and_gives_up_on_a_dead_target() -> None:
    a = await start_member(time.time_ns)
    try:
        await a.store.debit([Hit(c, 5) for c in counters(5)], time.time_ns())
        gone = f"127.0.0.1:{free_port()}"
        before, after = single_owner(a.address, gen(1)), single_owner(gone, gen(2))
        async with asyncio.timeout(5):
            await a.handoff.assignment_changed(before, after)  # returns once given up
        assert a.handoff.machine.outgoing == ()
        assert a.observed("given_up") == 1
        assert len(a.store) == 0
    finally:
        await a.handoff.close()
        await a.server.stop(0)


async def test_a_drained_member_returns_once_delivered(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    a, b, clock = pair
    await a.store.debit([Hit(c, 5) for c in counters(5)], clock())
    before, after = single_owner(a.address, gen(1)), single_owner(b.address, gen(2))
    drain = asyncio.create_task(a.handoff.assignment_changed(before, after))
    async with asyncio.timeout(5):
        while len(b.store) < 5 or a.handoff.machine.outgoing:
            await asyncio.sleep(0.005)
        assert not drain.done()  # a late pass is still to come
        clock.advance(1)  # its linger is over: it finds nothing and the drain ends
        await drain
    assert a.handoff.machine.late == ()


async def test_garbage_and_malformed_transfers_are_invalid_argument(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    _, b, _ = pair
    async with grpc.aio.insecure_channel(b.address) as channel:
        raw = channel.unary_unary(f"/{SERVICE}/Transfer")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(b"\xff\xff\xff")
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        bad = pb.TransferRequest(source="x:1", low=5, high=5, chunks=1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(bad.SerializeToString())
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "empty" in (err.value.details() or "")


async def test_a_store_shared_by_every_server_hands_nothing_off(redis_server: RedisServer) -> None:
    store = RedisStore(RedisSettings(redis_server.url, key_prefix="handoff:"))
    handoff = Handoff(store, lambda: "a:1", timings=FAST)
    try:
        before: Assignment = single_owner("a:1", gen(1))
        await handoff.assignment_changed(before, single_owner("b:2", gen(2)))
        await handoff.assignment_changed(single_owner("b:2", gen(2)), single_owner("a:1", gen(3)))
        assert handoff.shared
    finally:
        await handoff.close()
        await store.close()


async def test_a_range_cold_on_its_sender_stays_cold_on_the_next_owner() -> None:
    clock = ManualClock()
    b, c = await start_member(clock), await start_member(clock)
    try:
        gone = f"127.0.0.1:{free_port()}"
        g1, g2 = single_owner(gone, gen(1)), single_owner(b.address, gen(2))
        await b.handoff.assignment_changed(g1, g2)  # gained from a dead member: cold at b
        g3 = even_split([b.address, c.address], gen(3))
        [seen, unseen] = owned_by(g3, c.address, 2)
        await b.store.debit([Hit(seen, 3)], clock())  # created empty, so 3 in debt
        clock.advance(0.1)
        await c.handoff.assignment_changed(g2, g3)
        await b.handoff.assignment_changed(g2, g3)
        async with asyncio.timeout(5):  # b still waits for its own half: only c's matters here
            while b.handoff.machine.outgoing or c.handoff.machine.incoming:
                await asyncio.sleep(0.005)
        [o] = await c.store.hit([Hit(seen, 0)], clock())
        assert o.remaining == 0  # its debt came along
        [o] = await c.store.hit([Hit(unseen, 0)], clock())
        assert o.remaining == 1  # emptied when b gained it, 0.1 s ago: no fresh burst at c
    finally:
        for m in (b, c):
            await m.handoff.close()
            await m.server.stop(0)


async def test_reports_that_reach_the_old_owner_late_are_passed_on(
    pair: tuple[Member, Member, ManualClock],
) -> None:
    a, b, clock = pair
    before, after = single_owner(a.address, gen(1)), even_split([a.address, b.address], gen(2))
    [key, other] = owned_by(after, b.address, 2, Limit(10, Unit.MINUTE))
    await a.store.debit([Hit(key, 4)], clock())  # 6 left
    await b.handoff.assignment_changed(before, after)
    await a.handoff.assignment_changed(before, after)
    await settle(a, b)
    # Clients that have not heard of the move yet still report to a: the range is cold there
    # now, so the counters these create start empty and count what they are told.
    await a.store.debit([Hit(key, 3), Hit(other, 2)], clock())
    clock.advance(0.6)  # past the linger: the late pass is due
    async with asyncio.timeout(5):
        while (await a.store.export(0, HASH_SPACE, clock())).counters:
            await asyncio.sleep(0.02)  # until passed on, then dropped
    [o, p] = await b.store.debit([Hit(key, 0), Hit(other, 0)], clock())
    # 6 left less the 3 late hits; the other key was new: full less its 2 late hits.
    assert (o.remaining, p.remaining) == (3, 8)
    late = b.registry.get_sample_value("ratekeeper_handoff_counters_total", {"direction": "late"})
    assert late == 2
