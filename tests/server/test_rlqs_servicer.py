"""RlqsServicer over real gRPC on loopback: streams in and out, pushes, errors as status codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
from envoy.service.rate_limit_quota.v3 import rlqs_pb2, rlqs_pb2_grpc
from envoy.type.v3 import ratelimit_strategy_pb2

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.config import PolicyTree
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.rlqs import RlqsQuotas
from ratekeeper.protocol.stats import Event, MemoryStats
from ratekeeper.server.rlqs_servicer import RlqsServicer, add_rlqs_servicer
from ratekeeper.testing.clock import ManualClock

POLICY = PolicyTree.from_mapping(
    {
        "domain": "edge",
        "descriptors": [{"key": "name", "rate_limit": {"unit": "minute", "requests_per_unit": 60}}],
    }
)
Strategy = ratelimit_strategy_pb2.RateLimitStrategy


class FailingStore(MemoryStore):
    """A store whose backend is down."""

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        raise BackendError("connection refused")


@dataclass
class Harness:
    servicer: RlqsServicer
    stub: Any
    clock: ManualClock
    stats: MemoryStats


async def _serve(store: MemoryStore) -> AsyncIterator[Harness]:
    clock, stats = ManualClock(), MemoryStats()
    servicer = RlqsServicer(RlqsQuotas(StoreGate(store), lambda: POLICY), stats, clock)
    server = grpc.aio.server()
    add_rlqs_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(servicer, rlqs_pb2_grpc.RateLimitQuotaServiceStub(channel), clock, stats)
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async for running in _serve(MemoryStore()):
        yield running


@pytest.fixture
async def failing() -> AsyncIterator[Harness]:
    async for running in _serve(FailingStore()):
        yield running


def report(
    bucket: dict[str, str], allowed: int = 0, denied: int = 0, domain: str = "edge"
) -> rlqs_pb2.RateLimitQuotaUsageReports:
    message = rlqs_pb2.RateLimitQuotaUsageReports(domain=domain)
    usage = message.bucket_quota_usages.add()
    usage.bucket_id.bucket.update(bucket)
    usage.num_requests_allowed = allowed
    usage.num_requests_denied = denied
    return message  # time_elapsed unset: 0s, as Envoy 1.40's first report


async def read(call: Any) -> rlqs_pb2.RateLimitQuotaResponse:
    response = await asyncio.wait_for(call.read(), 5)
    assert isinstance(response, rlqs_pb2.RateLimitQuotaResponse)
    return response


async def test_first_report_is_answered_with_a_token_bucket(harness: Harness) -> None:
    call = harness.stub.StreamRateLimitQuotas()
    await call.write(report({"name": "acme"}, allowed=1))
    (action,) = (await read(call)).bucket_action
    assert dict(action.bucket_id.bucket) == {"name": "acme"}
    assignment = action.quota_assignment_action
    assert assignment.assignment_time_to_live.seconds == 15
    bucket = assignment.rate_limit_strategy.token_bucket
    assert bucket.max_tokens == 59
    assert bucket.tokens_per_fill.value == 60
    assert bucket.fill_interval.ToNanoseconds() == 60_000_000_000
    assert harness.stats.timings["StreamRateLimitQuotas"].calls == 1
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def test_an_unmatched_bucket_is_allowed_and_over_use_is_denied(harness: Harness) -> None:
    call = harness.stub.StreamRateLimitQuotas()
    await call.write(report({"path": "/x"}, allowed=5))
    (free,) = (await read(call)).bucket_action
    assert free.quota_assignment_action.rate_limit_strategy.blanket_rule == Strategy.ALLOW_ALL
    await call.write(report({"name": "acme"}, allowed=100))
    (denied,) = (await read(call)).bucket_action
    assert denied.quota_assignment_action.rate_limit_strategy.blanket_rule == Strategy.DENY_ALL
    call.cancel()


async def test_a_second_envoy_halves_the_first_ones_share_unasked(harness: Harness) -> None:
    one = harness.stub.StreamRateLimitQuotas()
    await one.write(report({"name": "acme"}, denied=1))
    (first,) = (await read(one)).bucket_action
    assert first.quota_assignment_action.rate_limit_strategy.token_bucket.max_tokens == 60
    two = harness.stub.StreamRateLimitQuotas()
    await two.write(report({"name": "acme"}, denied=1))
    (second,) = (await read(two)).bucket_action
    assert second.quota_assignment_action.rate_limit_strategy.token_bucket.max_tokens == 30
    (pushed,) = (await read(one)).bucket_action  # no report of its own asked for this
    bucket = pushed.quota_assignment_action.rate_limit_strategy.token_bucket
    assert bucket.tokens_per_fill.value == 120
    assert bucket.fill_interval.ToNanoseconds() == 240_000_000_000
    two.cancel()  # the second Envoy goes away: its share comes back to the first
    (back,) = (await read(one)).bucket_action
    assert back.quota_assignment_action.rate_limit_strategy.token_bucket.fill_interval.seconds == 60
    assert harness.servicer.streams == 1
    one.cancel()


async def test_an_idle_bucket_is_abandoned(harness: Harness) -> None:
    call = harness.stub.StreamRateLimitQuotas()
    await call.write(report({"name": "acme"}, allowed=1))
    await read(call)
    for _ in range(2):
        await call.write(report({"name": "acme"}))
        (action,) = (await read(call)).bucket_action
    assert action.HasField("abandon_action")
    call.cancel()


async def test_a_malformed_report_ends_the_stream_with_invalid_argument(harness: Harness) -> None:
    call = harness.stub.StreamRateLimitQuotas()
    await call.write(report({"name": "acme"}, domain=""))
    assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.INVALID_ARGUMENT
    assert "domain" in await call.details()


async def test_a_failing_store_leaves_reports_unanswered_and_the_stream_open(
    failing: Harness,
) -> None:
    call = failing.stub.StreamRateLimitQuotas()
    await call.write(report({"name": "acme"}, allowed=1))
    await call.write(report({"path": "/x"}, allowed=1))  # counts nothing: answered
    (free,) = (await read(call)).bucket_action
    assert free.quota_assignment_action.rate_limit_strategy.blanket_rule == Strategy.ALLOW_ALL
    assert failing.stats.events[Event.STORE_ERROR] == 1
    call.cancel()
