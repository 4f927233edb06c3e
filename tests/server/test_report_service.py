"""ReportService over real gRPC on loopback, with the in-memory store and a hand-driven clock."""

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
from ratekeeper.server.report_service import ReportService, ReportSettings, register

from .conftest import ManualClock

MS = 1_000_000
INTERVAL = 100 * MS

POLICY = PolicyTree.from_mapping(
    {
        "domain": "api",
        "descriptors": [
            {"key": "user", "rate_limit": {"unit": "second", "requests_per_unit": 10}},
            {
                "key": "shadow",
                "shadow_mode": True,
                "rate_limit": {"unit": "second", "requests_per_unit": 1},
            },
            {"key": "free", "rate_limit": {"unlimited": True}},
        ],
    }
)


@dataclass
class Harness:
    service: ReportService
    call: ReportCallAio
    clock: ManualClock

    async def report(
        self, client: str, *keys: pb.KeyReport, interval_ns: int = INTERVAL
    ) -> pb.ReportResponse:
        request = pb.ReportRequest(client_id=client, interval_ns=interval_ns, keys=list(keys))
        return await self.call(request, timeout=5)


def key(
    entries: Sequence[tuple[str, str]],
    admitted: int = 0,
    rejected: int = 0,
    *,
    domain: str = "api",
    limits: Sequence[str] = (),
) -> pb.KeyReport:
    return pb.KeyReport(
        domain=domain,
        entries=[pb.Entry(key=k, value=v) for k, v in entries],
        admitted=admitted,
        rejected=rejected,
        limits=[limit_to_spec(parse_limit(text)) for text in limits],
    )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = ManualClock()
    service = ReportService(MemoryStore(), lambda: POLICY, clock=clock)
    server = grpc.aio.server()
    register(server, service)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(service, aio_report_call(channel), clock)
    finally:
        await channel.close()
        await server.stop(None)


async def test_configured_rule_counts_and_admitted_hits_go_into_debt(harness: Harness) -> None:
    response = await harness.report("c1", key([("user", "alice")], admitted=25))
    (answer,) = response.instructions
    # 10/s bucket: 25 admitted leaves a debt of 15, repaid after 1.5 s
    assert answer.reject_for_ns == 1_500 * MS
    assert [spec_to_limit(s) for s in answer.limits] == [Limit(10, Unit.SECOND)]
    assert answer.valid_for_ns == 3 * INTERVAL
    harness.clock.advance(1.5)
    (answer,) = (await harness.report("c1", key([("user", "alice")]))).instructions
    assert answer.reject_for_ns == 0
    assert not answer.HasField("admit_rate")


async def test_demand_over_the_policy_is_shared_in_proportion(harness: Harness) -> None:
    # Three clients offer 10, 20 and 10 hits per 100 ms against 10/s: all rejected locally so far.
    await harness.report("a", key([("user", "bob")], rejected=1))
    await harness.report("b", key([("user", "bob")], rejected=2))
    (a,) = (await harness.report("a", key([("user", "bob")], rejected=1))).instructions
    (c,) = (await harness.report("c", key([("user", "bob")], rejected=1))).instructions
    # a: 10/s of 30/s total demand at first; the full bucket's 10 unspent tokens spread over 1 s
    assert a.admit_rate == pytest.approx(10 * 10 / 30 * 2)
    assert c.admit_rate == pytest.approx(10 * 10 / 40 * 2)


async def test_stale_demand_stops_counting(harness: Harness) -> None:
    await harness.report("a", key([("user", "eve")], rejected=10))
    harness.clock.advance(1.0)  # a's demand expires
    (b,) = (await harness.report("b", key([("user", "eve")], rejected=3))).instructions
    # b alone: its 30/s gets all the full bucket supplies (10/s + 10 tokens over 1 s), where a
    # stale 100/s from a would have left it 20 * 30 / 130
    assert b.admit_rate == pytest.approx(20.0)


async def test_inline_limit_counts_unconfigured_keys_and_config_wins(harness: Harness) -> None:
    inline = key([("tenant", "t1")], admitted=7, domain="other", limits=["5/s burst 5"])
    (answer,) = (await harness.report("c1", inline)).instructions
    assert [spec_to_limit(s) for s in answer.limits] == [parse_limit("5/s burst 5")]
    assert answer.reject_for_ns == 400 * MS  # a debt of 2 at 5/s
    configured = key([("user", "zed")], admitted=1, limits=["1000/s"])
    (answer,) = (await harness.report("c1", configured)).instructions
    assert [spec_to_limit(s) for s in answer.limits] == [Limit(10, Unit.SECOND)]


async def test_unknown_shadow_and_unlimited_keys_are_never_limited(harness: Harness) -> None:
    response = await harness.report(
        "c1",
        key([("nothing", "x")], admitted=1000),
        key([("shadow", "s")], admitted=1000),
        key([("free", "f")], admitted=1000),
    )
    for answer in response.instructions:
        assert answer.reject_for_ns == 0
        assert not answer.HasField("admit_rate")
        assert not answer.limits
        assert answer.valid_for_ns == 3 * INTERVAL
    assert harness.service.reports == 1


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (pb.ReportRequest(client_id="", keys=[key([("user", "a")])]), "client_id"),
        (pb.ReportRequest(client_id="c", keys=[key([])]), "entries"),
        (pb.ReportRequest(client_id="c", keys=[key([("user", "a")], domain="")]), "domain"),
        (pb.ReportRequest(client_id="c", keys=[key([("u", "v" * 300)])]), "longer"),
        (pb.ReportRequest(client_id="c", keys=[key([("u", "a")], limits=["1/s"] * 5)]), "inline"),
        (
            pb.ReportRequest(
                client_id="c",
                keys=[pb.KeyReport(domain="d", entries=[pb.Entry(key="k", value="v")],
                                   limits=[pb.LimitSpec(amount=1, unit_seconds=7)])],
            ),
            "unit",
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


async def test_report_size_is_capped() -> None:
    service = ReportService(MemoryStore(), lambda: None, settings=ReportSettings(max_keys=2))
    request = pb.ReportRequest(client_id="c", keys=[key([("k", str(i))]) for i in range(3)])
    with pytest.raises(Exception, match="at most 2"):
        await service.report(request)


async def test_demand_book_is_bounded_however_many_clients_report() -> None:
    settings = ReportSettings(max_clients_per_counter=4, max_demand_entries=8)
    clock = ManualClock()
    service = ReportService(MemoryStore(), lambda: POLICY, settings=settings, clock=clock)
    for i in range(50):
        request = pb.ReportRequest(
            client_id=f"c{i}", interval_ns=INTERVAL, keys=[key([("user", f"u{i % 5}")], 1)]
        )
        response = await service.report(request)
        assert response.instructions[0].valid_for_ns == 3 * INTERVAL
        clock.advance(0.001)
    assert len(service._demand) <= 8


async def test_a_resent_report_is_answered_but_not_counted_twice(harness: Harness) -> None:
    request = pb.ReportRequest(
        client_id="c1", interval_ns=INTERVAL, sequence=1, keys=[key([("user", "rep")], 12)]
    )
    first = await harness.call(request, timeout=5)
    again = await harness.call(request, timeout=5)  # the client never saw the first answer
    assert first.instructions[0].reject_for_ns == 200 * MS  # a debt of 2 at 10/s
    assert again.instructions[0].reject_for_ns == 200 * MS
    request.sequence = 2
    (answer,) = (await harness.call(request, timeout=5)).instructions
    assert answer.reject_for_ns == 1_400 * MS  # now 12 more


class FailingOnce(MemoryStore):
    """The in-memory store, failing its first debit as a Redis store can."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def debit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        if not self.failed:
            self.failed = True
            raise BackendError("store down")
        return await super().debit(hits, now)


async def test_a_report_the_store_failed_is_applied_when_resent() -> None:
    clock = ManualClock()
    service = ReportService(FailingOnce(), lambda: POLICY, clock=clock)
    request = pb.ReportRequest(
        client_id="c1", interval_ns=INTERVAL, sequence=1, keys=[key([("user", "x")], 12)]
    )
    with pytest.raises(BackendError):
        await service.report(request)
    (answer,) = (await service.report(request)).instructions
    assert answer.reject_for_ns == 200 * MS  # counted once, on the resend
