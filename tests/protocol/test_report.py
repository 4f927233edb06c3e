"""ReportProcessor on typed values: the in-memory store, a hand-set clock, no transport."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit, parse_limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, RequestError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer

MS = 1_000_000
INTERVAL = 100 * MS
START = 1_700_000_000 * NS_PER_SECOND

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


def key(
    entries: Sequence[tuple[str, str]],
    admitted: int = 0,
    rejected: int = 0,
    *,
    domain: str = "api",
    limits: Sequence[str] = (),
) -> KeyCounts:
    inline = tuple(parse_limit(text) for text in limits)
    return KeyCounts(domain, tuple(entries), admitted, rejected, inline)


def report(client: str, *keys: KeyCounts, sequence: int = 0) -> Report:
    return Report(client, keys, INTERVAL, sequence)


class Clocked:
    """A processor and the time its reports are applied at."""

    def __init__(self, processor: ReportProcessor) -> None:
        self.processor = processor
        self.now = START

    async def __call__(self, client: str, *keys: KeyCounts, sequence: int = 0) -> ReportAnswer:
        return await self.processor.process(report(client, *keys, sequence=sequence), self.now)

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NS_PER_SECOND)


def processor(store: MemoryStore | None = None, settings: ReportSettings | None = None) -> Clocked:
    gate = StoreGate(MemoryStore() if store is None else store)
    return Clocked(ReportProcessor(gate, lambda: POLICY, settings or ReportSettings()))


async def test_configured_rule_counts_and_admitted_hits_go_into_debt() -> None:
    send = processor()
    (answer,) = (await send("c1", key([("user", "alice")], admitted=25))).instructions
    # 10/s bucket: 25 admitted leaves a debt of 15, repaid after 1.5 s
    assert answer.reject_for_ns == 1_500 * MS
    assert answer.limits == (Limit(10, Unit.SECOND),)
    assert answer.valid_for_ns == 3 * INTERVAL
    send.advance(1.5)
    (answer,) = (await send("c1", key([("user", "alice")]))).instructions
    assert answer.reject_for_ns == 0
    assert math.isinf(answer.admit_rate)


async def test_demand_over_the_policy_is_shared_in_proportion() -> None:
    # Three clients offer 10, 20 and 10 hits per 100 ms against 10/s: all rejected locally so far.
    send = processor()
    await send("a", key([("user", "bob")], rejected=1))
    await send("b", key([("user", "bob")], rejected=2))
    (a,) = (await send("a", key([("user", "bob")], rejected=1))).instructions
    (c,) = (await send("c", key([("user", "bob")], rejected=1))).instructions
    # a: 10/s of 30/s total demand at first; the full bucket's 10 unspent tokens spread over 1 s
    assert a.admit_rate == pytest.approx(10 * 10 / 30 * 2)
    assert c.admit_rate == pytest.approx(10 * 10 / 40 * 2)


async def test_stale_demand_stops_counting() -> None:
    send = processor()
    await send("a", key([("user", "eve")], rejected=10))
    send.advance(1.0)  # a's demand expires
    (b,) = (await send("b", key([("user", "eve")], rejected=3))).instructions
    # b alone: its 30/s gets all the full bucket supplies (10/s + 10 tokens over 1 s), where a
    # stale 100/s from a would have left it 20 * 30 / 130
    assert b.admit_rate == pytest.approx(20.0)


async def test_inline_limit_counts_unconfigured_keys_and_config_wins() -> None:
    send = processor()
    inline = key([("tenant", "t1")], admitted=7, domain="other", limits=["5/s burst 5"])
    (answer,) = (await send("c1", inline)).instructions
    assert answer.limits == (parse_limit("5/s burst 5"),)
    assert answer.reject_for_ns == 400 * MS  # a debt of 2 at 5/s
    configured = key([("user", "zed")], admitted=1, limits=["1000/s"])
    (answer,) = (await send("c1", configured)).instructions
    assert answer.limits == (Limit(10, Unit.SECOND),)


async def test_unknown_shadow_and_unlimited_keys_are_never_limited() -> None:
    send = processor()
    answer = await send(
        "c1",
        key([("nothing", "x")], admitted=1000),
        key([("shadow", "s")], admitted=1000),
        key([("free", "f")], admitted=1000),
    )
    for instruction in answer.instructions:
        assert instruction.reject_for_ns == 0
        assert math.isinf(instruction.admit_rate)
        assert instruction.limits == ()
        assert instruction.valid_for_ns == 3 * INTERVAL
    assert send.processor.reports == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Report("", (key([("user", "a")]),)), "client_id"),
        (Report("c", (key([]),)), "keys[0]: 1..16 entries"),
        (Report("c", (key([("user", "a")], domain=""),)), "keys[0]: domain"),
        (Report("c", (key([("u", "a")]), key([("u", "v" * 300)]))), "keys[1]: entry longer"),
        (Report("c", (key([("u", "a")], limits=["1/s"] * 5),)), "at most 4 inline"),
        (Report("c", tuple(key([("k", str(i))]) for i in range(3))), "at most 2"),
    ],
)
async def test_malformed_reports_are_refused_naming_the_key(bad: Report, reason: str) -> None:
    send = processor(settings=ReportSettings(max_keys=2))
    with pytest.raises(RequestError, match=re.escape(reason)):
        await send.processor.process(bad, send.now)
    assert send.processor.reports == 0


async def test_demand_book_is_bounded_however_many_clients_report() -> None:
    send = processor(settings=ReportSettings(max_clients_per_counter=4, max_demand_entries=8))
    for i in range(50):
        answer = await send(f"c{i}", key([("user", f"u{i % 5}")], 1))
        assert answer.instructions[0].valid_for_ns == 3 * INTERVAL
        send.advance(0.001)
    assert len(send.processor._demand) <= 8


async def test_a_resent_report_is_answered_but_not_counted_twice() -> None:
    send = processor()
    first = await send("c1", key([("user", "rep")], 12), sequence=1)
    again = await send("c1", key([("user", "rep")], 12), sequence=1)  # the first answer was lost
    assert first.instructions[0].reject_for_ns == 200 * MS  # a debt of 2 at 10/s
    assert again.instructions[0].reject_for_ns == 200 * MS
    (answer,) = (await send("c1", key([("user", "rep")], 12), sequence=2)).instructions
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
    send = processor(FailingOnce())
    with pytest.raises(BackendError):
        await send("c1", key([("user", "x")], 12), sequence=1)
    (answer,) = (await send("c1", key([("user", "x")], 12), sequence=1)).instructions
    assert answer.reject_for_ns == 200 * MS  # counted once, on the resend
