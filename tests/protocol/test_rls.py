"""RlsDecider without a transport: serialized requests in, responses out, stats in memory.

The full RLS semantics table runs over real gRPC in ``tests/server/test_ratelimit.py``; these
cases pin what the decider owns itself: the plan cache and reloads, stats through the sink,
store failures, and the ownership gate in front of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, RequestError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.rls import RlsDecider, RlsSettings
from ratekeeper.protocol.stats import Event, MemoryStats

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
NOW = 1_700_000_000 * NS_PER_SECOND


def policy(per_minute: int) -> PolicyTree:
    return PolicyTree.from_mapping(
        {
            "domain": "d",
            "descriptors": [
                {"key": "k", "rate_limit": {"unit": "minute", "requests_per_unit": per_minute}}
            ],
        }
    )


def request(domain: str = "d", value: str = "a") -> bytes:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="k", value=value)
    descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
    message = rls_pb2.RateLimitRequest(domain=domain, descriptors=[descriptor])
    return message.SerializeToString()


class Decider:
    """A decider on the memory store, and what it counted."""

    def __init__(self, store: Any = None, settings: RlsSettings | None = None) -> None:
        self.holder = PolicyHolder(policy(2))
        self.stats = MemoryStats()
        if not isinstance(store, StoreGate):
            store = StoreGate(MemoryStore() if store is None else store)
        self.decider = RlsDecider(self.holder, store, self.stats, settings or RlsSettings())

    async def ask(self, raw: bytes) -> Any:
        return rls_pb2.RateLimitResponse.FromString(await self.decider.answer(raw, NOW))


async def test_answers_count_hits_into_the_rule_stats() -> None:
    d = Decider()
    codes = [(await d.ask(request())).overall_code for _ in range(3)]
    assert codes == [OK, OK, OVER]
    counts = d.stats.rules.get("d", "d.k")
    assert (counts.total_hits, counts.within_limit, counts.over_limit) == (3, 2, 1)
    assert counts.near_limit == 1  # 2 of 2 used is past 80 %


async def test_a_reload_voids_the_cached_plans() -> None:
    d = Decider()
    for _ in range(2):
        await d.ask(request())
    assert (await d.ask(request())).overall_code == OVER
    d.holder.policy = policy(1000)  # a new limit: a new counter, planned afresh
    response = await d.ask(request())
    assert response.overall_code == OK
    assert response.statuses[0].current_limit.requests_per_unit == 1000


async def test_unknown_domains_are_answered_ok_and_counted() -> None:
    d = Decider()
    response = await d.ask(request(domain="nowhere"))
    assert response.overall_code == OK
    assert d.stats.unknown_domains.get("nowhere").count == 1


async def test_parsed_requests_take_the_same_path() -> None:
    d = Decider()
    message = rls_pb2.RateLimitRequest.FromString(request())
    response = await d.decider.should_rate_limit(message, NOW)
    assert response.statuses[0].limit_remaining == 1


async def test_undecodable_bytes_are_a_request_error() -> None:
    with pytest.raises(RequestError, match="malformed RateLimitRequest"):
        await Decider().decider.answer(b"\x0a\xff\xff\xff", NOW)


class FailingStore(MemoryStore):
    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        raise BackendError("down")


@pytest.mark.parametrize(("fail_closed", "code"), [(False, OK), (True, OVER)])
async def test_store_failures_are_answered_per_fail_closed_and_counted(
    fail_closed: bool, code: int
) -> None:
    d = Decider(FailingStore(), RlsSettings(fail_closed=fail_closed))
    assert (await d.ask(request())).overall_code == code
    assert d.stats.events[Event.STORE_ERROR] == 1


@pytest.mark.parametrize(
    ("fail_closed", "says"),
    [(False, "answering OK (fail open)"), (True, "answering OVER_LIMIT (fail closed)")],
)
async def test_the_store_error_log_line_names_the_failure_mode_in_force(
    fail_closed: bool, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    d = Decider(FailingStore(), RlsSettings(fail_closed=fail_closed))
    await d.ask(request())
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line == f"store error, {says}: down"


async def test_global_shadow_mode_answers_ok_and_counts_it() -> None:
    d = Decider(settings=RlsSettings(shadow_mode=True))
    codes = [(await d.ask(request())).overall_code for _ in range(3)]
    assert codes == [OK, OK, OK]
    assert d.stats.events[Event.GLOBAL_SHADOW_MODE] == 1
    assert d.stats.rules.get("d", "d.k").over_limit == 1


class OwnsNothing:
    def owns(self, key_hash: int) -> bool:
        return False


async def test_counters_this_replica_does_not_own_are_applied_and_counted_at_the_gate() -> None:
    stats = MemoryStats()
    d = Decider(StoreGate(MemoryStore(), OwnsNothing(), stats))
    codes = [(await d.ask(request())).overall_code for _ in range(3)]
    assert codes == [OK, OK, OVER]  # counted as if owned: requests must flow
    assert stats.events[Event.MISDIRECTED_KEY] == 3
