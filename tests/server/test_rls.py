"""The gRPC face of RLS: INVALID_ARGUMENT for malformed requests, store failures, one store call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, ConfigError
from ratekeeper.protocol.rls_plan import MAX_DESCRIPTOR_BYTES, MAX_DESCRIPTORS
from ratekeeper.server import stores
from ratekeeper.server.options import with_options
from ratekeeper.server.rls_servicer import SERVICE_NAME
from ratekeeper.server.settings import ServerSettings
from tests.server.conftest import CONFIG, Start, descriptor

_Override = ratelimit_pb2.RateLimitDescriptor.RateLimitOverride

INVALID = [
    ("", [descriptor(("key1", "a"))], "rate limit domain must not be empty"),
    ("test", [], "rate limit descriptor list must not be empty"),
    (
        "test",
        [descriptor(("key1", "a"), limit=_Override(requests_per_unit=1))],
        "descriptor 0: limit override has no valid unit",
    ),
    (
        "test",
        [descriptor(("key1", "a")), descriptor(("key1", "x" * MAX_DESCRIPTOR_BYTES))],
        f"descriptor 1: larger than {MAX_DESCRIPTOR_BYTES} bytes",
    ),
    (
        "test",
        [descriptor(("key1", "a"))] * (MAX_DESCRIPTORS + 1),
        f"more than {MAX_DESCRIPTORS} descriptors in one request",
    ),
]


@pytest.mark.parametrize(("domain", "descriptors", "message"), INVALID)
async def test_malformed_requests_get_invalid_argument(
    serve: Start, domain: str, descriptors: list[Any], message: str
) -> None:
    running = await serve(CONFIG)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.ask(domain, *descriptors)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    # ... and the server keeps serving.
    response = await running.ask("test", descriptor(("key1", "a")))
    assert response.overall_code == rls_pb2.RateLimitResponse.OK


async def test_undecodable_request_bytes_get_invalid_argument(serve: Start) -> None:
    running = await serve(CONFIG)
    call = running.channel.unary_unary(f"/{SERVICE_NAME}/ShouldRateLimit")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"\x0a\xff\xff\xff")  # domain: a length running past the end
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("malformed RateLimitRequest")
    response = await running.ask("test", descriptor(("key1", "a")))
    assert response.overall_code == rls_pb2.RateLimitResponse.OK


class FailingStore(MemoryStore):
    """A store whose backend is down: every call raises BackendError."""

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        raise BackendError("connection refused")

    def healthy(self) -> bool:
        return False


class CountingStore(MemoryStore):
    """The memory store, counting calls (to check one store call per request)."""

    calls: list[int]

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self.calls.append(len(hits))
        return await super().hit(hits, now)


@pytest.fixture
def failing_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stores.STORES, "failing", lambda url, settings: FailingStore())


@pytest.mark.usefixtures("failing_backend")
@pytest.mark.parametrize(
    ("fail_closed", "code"),
    [(False, rls_pb2.RateLimitResponse.OK), (True, rls_pb2.RateLimitResponse.OVER_LIMIT)],
)
async def test_store_errors_fail_open_or_closed(serve: Start, fail_closed: bool, code: int) -> None:
    running = await serve(CONFIG, backend="failing://", fail_closed=fail_closed)
    response = await running.ask("test", descriptor(("key1", "a")), descriptor(("nope", "x")))
    assert response.overall_code == code
    assert [s.code for s in response.statuses] == [code, rls_pb2.RateLimitResponse.OK]
    assert b"ratekeeper_store_errors_total 1.0" in running.server.components.metrics.render()
    assert not running.server.components.health.serving()


async def test_one_store_call_per_request(serve: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CountingStore()
    store.calls = []
    monkeypatch.setitem(stores.STORES, "counting", lambda url, settings: store)
    running = await serve(CONFIG, backend="counting://")
    three = [descriptor(("key1", "a")), descriptor(("key2", "b")), descriptor(("key1", "c"))]
    await running.ask("test", *three)
    await running.ask("test", descriptor(("nope", "x")))  # nothing to count: no call
    assert store.calls == [3]


def test_unknown_backend_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'nosuch://x'; known: memory://"):
        stores.open_store(with_options(ServerSettings(), backend="nosuch://x"))


async def test_calls_are_timed_and_malformed_ones_counted(serve: Start) -> None:
    running = await serve(CONFIG)
    await running.ask("test", descriptor(("key1", "a")))
    with pytest.raises(grpc.aio.AioRpcError):
        await running.ask("", descriptor(("key1", "a")))
    lines = running.server.components.metrics.render().decode().splitlines()
    assert 'ratekeeper_call_seconds_count{call="ShouldRateLimit"} 2.0' in lines
    assert 'ratekeeper_invalid_requests_total{call="ShouldRateLimit"} 1.0' in lines
