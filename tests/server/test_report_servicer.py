"""ReportServicer over real gRPC on loopback: the wire in and out, errors as status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import Limit, Unit, parse_limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import ReportCallAio, aio_report_call, limit_to_spec, spec_to_limit
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.protocol.stats import Event, MemoryStats
from ratekeeper.server.report_servicer import ReportServicer, add_report_servicer
from ratekeeper.testing.clock import ManualClock

MS = 1_000_000
INTERVAL = 100 * MS

POLICY = PolicyTree.from_mapping(
    {
        "domain": "api",
        "descriptors": [
            {"key": "user", "rate_limit": {"unit": "second", "requests_per_unit": 10}},
            {"key": "free", "rate_limit": {"unlimited": True}},
        ],
    }
)


class FailingStore(MemoryStore):
    """A store whose backend is down."""

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        raise BackendError("connection refused")


@dataclass
class Harness:
    servicer: ReportServicer
    call: ReportCallAio
    clock: ManualClock
    stats: MemoryStats
    target: str


def key(
    entries: Sequence[tuple[str, str]],
    admitted: int = 0,
    *,
    domain: str = "api",
    limits: Sequence[str] = (),
) -> pb.KeyReport:
    return pb.KeyReport(
        domain=domain,
        entries=[pb.Entry(key=k, value=v) for k, v in entries],
        admitted=admitted,
        limits=[limit_to_spec(parse_limit(text)) for text in limits],
    )


async def _serve(store: MemoryStore) -> AsyncIterator[Harness]:
    clock, stats = ManualClock(), MemoryStats()
    servicer = ReportServicer(ReportProcessor(StoreGate(store), lambda: POLICY), stats, clock)
    server = grpc.aio.server()
    add_report_servicer(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(servicer, aio_report_call(channel), clock, stats, f"127.0.0.1:{port}")
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


async def test_a_report_is_applied_at_the_clock_and_answered_on_the_wire(harness: Harness) -> None:
    request = pb.ReportRequest(
        client_id="c1", interval_ns=INTERVAL, keys=[key([("user", "a")], 25), key([("free", "f")])]
    )
    limited, free = (await harness.call(request, timeout=5)).instructions
    assert limited.reject_for_ns == 1_500 * MS  # a debt of 15 at 10/s
    assert [spec_to_limit(s) for s in limited.limits] == [Limit(10, Unit.SECOND)]
    assert limited.valid_for_ns == 3 * INTERVAL
    assert not free.HasField("admit_rate")  # unbounded: left unset on the wire
    assert not free.limits
    assert harness.servicer.reports == 1
    assert harness.stats.timings["report"].calls == 1


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (pb.ReportRequest(client_id="", keys=[key([("user", "a")])]), "client_id"),
        (pb.ReportRequest(client_id="c", keys=[key([])]), "entries"),
        (pb.ReportRequest(client_id="c", keys=[key([("u", "a")], limits=["1/s"] * 5)]), "inline"),
        (
            pb.ReportRequest(
                client_id="c",
                keys=[pb.KeyReport(domain="d", entries=[pb.Entry(key="k", value="v")],
                                   limits=[pb.LimitSpec(amount=1, unit_seconds=7)])],
            ),
            "keys[0]: invalid inline limit: unit_seconds 7",
        ),
    ],
)  # fmt: skip
async def test_malformed_reports_are_invalid_argument(
    harness: Harness, request_: pb.ReportRequest, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.call(request_, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (caught.value.details() or "")
    assert harness.stats.invalid_calls["report"] == 1
    assert harness.stats.timings["report"].calls == 1


async def test_a_failing_store_is_unavailable(failing: Harness) -> None:
    request = pb.ReportRequest(client_id="c1", keys=[key([("user", "a")], 1)])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await failing.call(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "store unavailable: connection refused" in (caught.value.details() or "")
    assert failing.stats.events[Event.SERVICE_ERROR] == 0


async def test_garbage_bytes_are_invalid_argument_not_unknown(harness: Harness) -> None:
    """Issue 16 item 8: bytes that are no ReportRequest."""
    channel = grpc.aio.insecure_channel(harness.target)
    raw = channel.unary_unary("/ratekeeper.v1.ReportService/Report")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(b"\xff\xff\xff\xff garbage", timeout=5)
    finally:
        await channel.close()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = pb.ReportRequest(client_id="c1", interval_ns=INTERVAL, keys=[key([("user", "a")], 1)])
    assert len((await harness.call(request, timeout=5)).instructions) == 1  # still serving


async def test_a_uint64_max_count_on_the_wire_refuses_that_key_not_the_report(
    harness: Harness,
) -> None:
    """Issue 16 items 1 and 3: no INTERNAL, no debit, the other keys answered."""
    request = pb.ReportRequest(
        client_id="x",
        interval_ns=INTERVAL,
        keys=[key([("user", "victim")], 2**64 - 1), key([("user", "a")], 25)],
    )
    poisoned, good = (await harness.call(request, timeout=5)).instructions
    assert poisoned.error
    assert (poisoned.valid_for_ns, poisoned.reject_for_ns) == (0, 0)
    assert not good.error
    assert good.reject_for_ns == 1_500 * MS
    again = pb.ReportRequest(client_id="y", interval_ns=INTERVAL, keys=[key([("user", "victim")])])
    (victim,) = (await harness.call(again, timeout=5)).instructions
    assert victim.reject_for_ns == 0  # never debited
