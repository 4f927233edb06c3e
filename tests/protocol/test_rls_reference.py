"""Where envoyproxy/ratelimit's own tests pin a behaviour we once answered differently.

Each case expects the reference's behaviour (src/service/ratelimit.go, src/limiter/
base_limiter.go), on the memory store with the reference's fixed window.
"""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import json_format

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.rls import RlsDecider, RlsSettings
from ratekeeper.protocol.stats import Event, MemoryStats, RuleCounts

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
NOW = 1_700_000_000 * NS_PER_SECOND


def rule(key: str, per_minute: int, **flags: Any) -> dict[str, Any]:
    return {"key": key, "rate_limit": {"unit": "minute", "requests_per_unit": per_minute}} | flags


class Service:
    """A decider on the memory store with the fixed window, and what it counted."""

    def __init__(self, *rules: dict[str, Any], **settings: Any) -> None:
        tree = PolicyTree.from_mapping(
            {"domain": "d", "algorithm": "fixed_window", "descriptors": list(rules)}
        )
        self.stats = MemoryStats()
        store = StoreGate(MemoryStore())
        self.decider = RlsDecider(PolicyHolder(tree), store, self.stats, RlsSettings(**settings))

    async def ask(self, *keys: str, hits: int = 0) -> Any:
        descriptors = [
            ratelimit_pb2.RateLimitDescriptor(
                entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=key, value="v")]
            )
            for key in keys
        ]
        message = rls_pb2.RateLimitRequest(domain="d", descriptors=descriptors, hits_addend=hits)
        raw = await self.decider.answer(message.SerializeToString(), NOW)
        return rls_pb2.RateLimitResponse.FromString(raw)

    def counts(self, key: str) -> RuleCounts:
        return self.stats.rules.get("d", f"d.{key}")


async def test_global_shadow_mode_keeps_the_statuses_and_counts_once_per_request() -> None:
    service = Service(rule("a", 1), rule("b", 1), shadow_mode=True)
    await service.ask("a", "b")
    response = await service.ask("a", "b")
    assert response.overall_code == OK
    assert [s.code for s in response.statuses] == [OVER, OVER]
    assert service.stats.events[Event.GLOBAL_SHADOW_MODE] == 1
    assert service.counts("a").over_limit == service.counts("b").over_limit == 1


async def test_global_shadow_mode_is_not_counted_when_nothing_is_over() -> None:
    service = Service(rule("a", 5), shadow_mode=True)
    response = await service.ask("a")
    assert (response.overall_code, response.statuses[0].code) == (OK, OK)
    assert service.stats.events[Event.GLOBAL_SHADOW_MODE] == 0


async def test_rule_shadow_mode_answers_the_descriptor_ok() -> None:
    service = Service(rule("a", 1, shadow_mode=True), rule("b", 1), shadow_mode=True)
    await service.ask("a", "b")
    response = await service.ask("a", "b")
    assert [s.code for s in response.statuses] == [OK, OVER]
    assert response.overall_code == OK
    assert service.counts("a").shadow_mode == 1


@pytest.mark.parametrize(
    ("used", "hits", "near", "over", "within"),
    [
        (5, 2, 1, 0, 2),  # 7 of 8: only the hit past floor(8 × 0.8) = 6 is near
        (6, 2, 2, 0, 2),  # all of them past 6
        (2, 2, 0, 0, 2),  # 4 of 8: none near
        (3, 7, 2, 2, 0),  # over: 2 past 8, and 7..8 near (from the threshold)
        (7, 3, 1, 2, 0),  # over: 2 past 8, and 8 near (from the count before)
        (9, 2, 0, 2, 0),  # already over before: every hit over, none near
    ],
)
async def test_a_batch_of_hits_is_split_between_within_near_and_over(
    used: int, hits: int, near: int, over: int, within: int
) -> None:
    service = Service(rule("a", 8))
    if used:
        await service.ask("a", hits=used)
    counts = service.counts("a")
    start = (counts.near_limit, counts.over_limit, counts.within_limit)
    await service.ask("a", hits=hits)
    added = (
        counts.near_limit - start[0],
        counts.over_limit - start[1],
        counts.within_limit - start[2],
    )
    assert added == (near, over, within)


async def test_rule_shadow_mode_counts_only_the_hits_over() -> None:
    service = Service(rule("a", 8, shadow_mode=True))
    await service.ask("a", hits=7)
    response = await service.ask("a", hits=3)
    assert response.statuses[0].code == OK
    counts = service.counts("a")
    assert (counts.over_limit, counts.shadow_mode) == (2, 2)


def metadata_service(**settings: Any) -> Service:
    return Service(
        rule("a", 1, metadata={"owner": "team-a", "tags": {"x": 1}}),
        rule("b", 5, metadata={"owner": "team-b", "tags": {"y": 2}}),
        **settings,
    )


async def test_dynamic_metadata_is_off_by_default() -> None:
    response = await metadata_service().ask("a")
    assert not response.HasField("dynamic_metadata")


async def test_dynamic_metadata_holds_the_request_and_the_passed_rules_metadata() -> None:
    service = metadata_service(dynamic_metadata=True)
    response = await service.ask("a", "b", hits=1)
    metadata = json_format.MessageToDict(response.dynamic_metadata)
    assert metadata == {
        "domain": "d",
        "descriptors": [{"entries": ["a=v"]}, {"entries": ["b=v"]}],
        "hitsAddend": 1.0,
        "metadata": {"owner": "team-a", "tags": {"x": 1.0, "y": 2.0}},
    }
    # "a" is now over: only the descriptors answered OK bring their rule's metadata.
    response = await service.ask("a", "b")
    metadata = json_format.MessageToDict(response.dynamic_metadata)
    assert "hitsAddend" not in metadata
    assert metadata["metadata"] == {"owner": "team-b", "tags": {"y": 2.0}}


async def test_dynamic_metadata_writes_a_descriptors_own_hits_and_override() -> None:
    service = metadata_service(dynamic_metadata=True)
    override = ratelimit_pb2.RateLimitDescriptor.RateLimitOverride(
        requests_per_unit=10, unit=rls_pb2.RateLimitResponse.RateLimit.MINUTE
    )
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="b", value="v")], limit=override
    )
    descriptor.hits_addend.value = 3
    message = rls_pb2.RateLimitRequest(domain="d", descriptors=[descriptor])
    raw = await service.decider.answer(message.SerializeToString(), NOW)
    response = rls_pb2.RateLimitResponse.FromString(raw)
    metadata = json_format.MessageToDict(response.dynamic_metadata)
    assert metadata == {
        "domain": "d",
        "descriptors": [
            {
                "entries": ["b=v"],
                "limit": "requests_per_unit: 10 unit: MINUTE",
                "hitsAddend": 3.0,
            }
        ],
    }
