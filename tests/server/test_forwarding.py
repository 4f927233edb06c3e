"""Any member is the entry point: RLS descriptors owned by another member are decided by it.

Two in-process members on loopback (real gRPC and HTTP) hold a fixed assignment, the hash space
split evenly between their addresses; each member's own store and stats show who counted what.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.core.keys import Entries, canonical_bytes, key_hash
from ratekeeper.core.slices import HASH_SPACE, Assignment, even_split
from ratekeeper.errors import ForwardError
from ratekeeper.server import forward_batch
from ratekeeper.server.app import Replica
from ratekeeper.server.forwarding import FORWARDED, AssignmentOwners
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.testing.clock import ManualClock
from ratekeeper.testing.fixed_members import build_member
from ratekeeper.testing.procs import free_port
from tests.server.conftest import CONFIG, descriptor

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT


@dataclass
class Member:
    """One started member and a client for it."""

    address: str
    server: Replica
    owners: AssignmentOwners
    channel: grpc.aio.Channel
    stub: Any

    async def ask(self, *descriptors: Any, metadata: Any = None, hits_addend: int = 0) -> Any:
        request = rls_pb2.RateLimitRequest(
            domain="test", descriptors=list(descriptors), hits_addend=hits_addend
        )
        return await self.stub.ShouldRateLimit(request, metadata=metadata)

    async def counters(self) -> set[tuple[str, Any]]:
        """(domain, entries) of every counter this member's store holds."""
        snapshot = await self.server.components.store.export(0, HASH_SPACE, 0)
        return {(c.counter.domain, c.counter.entries) for c in snapshot.counters}

    def rls_calls(self) -> int:
        return sum(self.server.components.metrics.timer("ShouldRateLimit").counts)

    def metric(self, name: str) -> float:
        value = self.server.components.metrics.registry.get_sample_value(name)
        return value or 0.0


Pair = Callable[..., Awaitable[tuple[Member, Member]]]


@contextlib.asynccontextmanager
async def members(
    root: Path, config: str = CONFIG, clock: Callable[[], int] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Member, Member]]:
    """Members A and B on loopback, the hash space split evenly between them, deciding at
    ``clock``'s time (default: a :class:`ManualClock` each); ``overrides`` are server options."""
    ports = [free_port(), free_port()]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    assignment = even_split(addresses)
    started: list[Member] = []
    try:
        for i, port in enumerate(ports):
            config_dir = root / f"member{i}"
            config_dir.mkdir(parents=True)
            (config_dir / "policy.yaml").write_text(config)
            settings = with_options(
                ServerSettings(), grpc_port=port, http_port=0, config=str(config_dir), **overrides
            )
            owners = AssignmentOwners(addresses[i], assignment)
            server = Replica(build_member(settings, owners, clock or ManualClock()))
            await server.start()
            channel = grpc.aio.insecure_channel(addresses[i])
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            started.append(Member(addresses[i], server, owners, channel, stub))
        yield started[0], started[1]
    finally:
        for member in started:
            await member.channel.close()
            await member.server.stop(0)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """``await pair(**settings)``: :func:`members` on the RLS tests' config."""
    async with contextlib.AsyncExitStack() as stack:
        pairs = iter(range(1000))

        async def start(**overrides: Any) -> tuple[Member, Member]:
            root = tmp_path / f"pair{next(pairs)}"
            return await stack.enter_async_context(members(root, **overrides))

        yield start


def owned_by(
    assignment: Assignment,
    owner: str,
    key: str = "key1",
    start: int = 0,
    domain: str = "test",
    prefix: Entries = (),
) -> str:
    """A value of ``key`` whose descriptor (after the entries ``prefix``) ``owner`` owns."""
    for n in range(start, start + 1000):
        value = f"v{n}"
        entries = (*prefix, (key, value))
        if assignment.owner_of(key_hash(canonical_bytes(domain, entries))) == owner:
            return value
    raise AssertionError("no value found")


def assignment_of(member: Member) -> Assignment:
    assert member.owners.assignment is not None
    return member.owners.assignment


async def test_a_key_owned_by_another_member_gets_the_owners_answer(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), b.address)
    codes = [(await a.ask(descriptor(("key1", value)))).overall_code for _ in range(3)]
    assert codes == [OK, OK, OVER]  # key1: 2 a minute, counted once, by the owner
    assert await b.counters() == {("test", (("key1", value),))}
    assert await a.counters() == set()
    # Asked directly, the owner's counter is the one that moved.
    assert (await b.ask(descriptor(("key1", value)))).overall_code == OVER


async def test_a_key_owned_here_is_not_forwarded(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), a.address)
    assert (await a.ask(descriptor(("key1", value)))).overall_code == OK
    assert await a.counters() == {("test", (("key1", value),))}
    assert b.rls_calls() == 0


async def test_local_and_remote_descriptors_are_merged_in_order(pair: Pair) -> None:
    a, b = await pair(limit_response_headers_enabled=True)
    assignment = assignment_of(a)
    here = owned_by(assignment, a.address, "key2")
    there = owned_by(assignment, b.address, "key1")
    request = (descriptor(("key2", here)), descriptor(("white", "x")), descriptor(("key1", there)))
    first = await a.ask(*request)
    assert first.overall_code == OK
    assert [s.code for s in first.statuses] == [OK, OK, OK]
    assert [s.limit_remaining for s in first.statuses] == [4, 0, 1]
    assert first.statuses[2].current_limit.requests_per_unit == 2
    # The headers describe the least remaining: the remote key1 (1 of 2 left).
    assert {h.key: h.value for h in first.response_headers_to_add}["RateLimit-Remaining"] == "1"
    await a.ask(*request)
    third = await a.ask(*request)
    assert third.overall_code == OVER  # the remote descriptor is over: the request is
    assert [s.code for s in third.statuses] == [OK, OK, OVER]
    headers = {h.key: h.value for h in third.response_headers_to_add}
    assert headers["RateLimit-Limit"] == "2"
    assert headers["RateLimit-Remaining"] == "0"
    assert await a.counters() == {("test", (("key2", here),))}
    assert await b.counters() == {("test", (("key1", there),))}


async def test_hits_addend_and_rule_stats_are_the_owners(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), b.address, "key2")
    answer = await a.ask(descriptor(("key2", value)), hits_addend=3)
    assert answer.statuses[0].limit_remaining == 2  # 5 a minute, 3 hits
    owner_stats = b.server.components.metrics.rule("test", "test.key2")
    entry_stats = a.server.components.metrics.rule("test", "test.key2")
    assert (owner_stats.total_hits, entry_stats.total_hits) == (3, 0)


async def test_one_call_per_owner_per_request(pair: Pair) -> None:
    a, b = await pair()
    assignment = assignment_of(a)
    values = [owned_by(assignment, b.address, "key2", start) for start in (0, 1000, 2000)]
    answer = await a.ask(*(descriptor(("key2", v)) for v in values))
    assert [s.limit_remaining for s in answer.statuses] == [4, 4, 4]
    assert b.rls_calls() == 1


async def test_a_forwarded_call_is_answered_where_it_lands(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), a.address)  # A owns it; B is told it was forwarded
    answer = await b.ask(descriptor(("key1", value)), metadata=FORWARDED)
    assert answer.overall_code == OK
    assert await b.counters() == {("test", (("key1", value),))}
    assert a.rls_calls() == 0
    assert b.server.components.forwarder is not None
    assert b.server.components.forwarder.open_owners == frozenset()


async def test_an_owner_that_is_down_fails_open_and_is_counted(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), b.address)
    await b.server.stop(0)
    answers = [await a.ask(descriptor(("key1", value))) for _ in range(3)]
    assert [r.overall_code for r in answers] == [OK, OK, OK]
    assert a.metric("ratekeeper_forward_errors_total") == 3
    assert await a.counters() == set()  # answered per the failure mode, not counted here


async def test_an_owner_that_is_down_fails_closed_when_configured(pair: Pair) -> None:
    a, b = await pair(fail_closed=True)
    here = owned_by(assignment_of(a), a.address)
    there = owned_by(assignment_of(a), b.address)
    await b.server.stop(0)
    answer = await a.ask(descriptor(("key1", here)), descriptor(("key1", there)))
    assert answer.overall_code == OVER
    assert [s.code for s in answer.statuses] == [OK, OVER]
    assert a.metric("ratekeeper_forward_errors_total") == 1


async def test_json_is_forwarded(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), b.address)
    body = {"domain": "test", "descriptors": [{"entries": [{"key": "key1", "value": value}]}]}
    url = f"http://127.0.0.1:{a.server.http_port}/json"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(url, json=body) as response:
                statuses.append(response.status)
    assert statuses == [200, 200, 429]
    assert await b.counters() == {("test", (("key1", value),))}
    assert await a.counters() == set()


async def test_channels_close_when_an_owner_leaves(pair: Pair) -> None:
    a, b = await pair()
    value = owned_by(assignment_of(a), b.address)
    await a.ask(descriptor(("key1", value)))
    forwarder = a.server.components.forwarder
    assert forwarder is not None
    assert forwarder.open_owners == {b.address}
    alone = even_split([a.address])
    await a.owners.assignment_changed(assignment_of(a), alone)
    await forwarder.assignment_changed(assignment_of(a), alone)
    assert forwarder.open_owners == frozenset()
    assert (await a.ask(descriptor(("key1", value)))).overall_code == OK
    assert await a.counters() == {("test", (("key1", value),))}


def wire(key: str, value: str, hits: int = 1) -> bytes:
    return bytes(descriptor((key, value), hits=hits).SerializeToString())


async def test_concurrent_forwards_to_one_owner_travel_in_one_call(pair: Pair) -> None:
    a, b = await pair()
    forwarder = a.server.components.forwarder
    assert forwarder is not None
    assignment = assignment_of(a)
    values = [owned_by(assignment, b.address, "key2", start) for start in range(0, 5000, 1000)]
    answered = await asyncio.gather(
        *(forwarder.forward(b.address, "test", [wire("key2", v, hits=2)]) for v in values)
    )
    assert [[s.limit_remaining for s in statuses] for statuses in answered] == [[3]] * 5
    coalescer = forwarder.coalescers[b.address]
    assert (coalescer.calls, coalescer.batches, coalescer.batched) == (1, 1, 5)
    assert b.rls_calls() == 0
    assert sum(b.server.components.metrics.timer("ShouldRateLimitBatch").counts) == 1
    assert len(await b.counters()) == 5


async def test_concurrent_requests_are_answered_as_one_server_would(pair: Pair) -> None:
    a, b = await pair()
    assignment = assignment_of(a)
    there = [owned_by(assignment, b.address, "key1", start) for start in range(0, 4000, 1000)]
    here = [owned_by(assignment, a.address, "key1", start) for start in range(0, 4000, 1000)]
    asks = [a.ask(descriptor(("key1", v))) for v in (there + here) * 3]
    codes = [r.overall_code for r in await asyncio.gather(*asks)]
    assert (codes.count(OK), codes.count(OVER)) == (16, 8)  # key1: 2 a minute, 3 asks each
    assert await b.counters() == {("test", (("key1", v),)) for v in there}
    assert await a.counters() == {("test", (("key1", v),)) for v in here}


async def test_a_batch_to_an_owner_that_is_down_fails_every_caller(pair: Pair) -> None:
    a, b = await pair()
    forwarder = a.server.components.forwarder
    assert forwarder is not None
    await b.server.stop(0)
    calls = [forwarder.forward(b.address, "test", [wire("key1", f"v{n}")]) for n in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ForwardError) for r in results)


async def test_a_member_answers_a_garbage_batch_with_invalid_argument(pair: Pair) -> None:
    a, _ = await pair()
    call = a.channel.unary_unary(forward_batch.METHOD, None, None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"\x12\x00", metadata=FORWARDED)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
