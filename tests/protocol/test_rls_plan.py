"""Planner: what a request's first sight decides, read off the plan (no store, no transport)."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.errors import RequestError
from ratekeeper.protocol.rls_plan import (
    MAX_DESCRIPTORS,
    STATUS_OK,
    Counted,
    Planner,
    RequestPlan,
)
from ratekeeper.protocol.stats import MemoryStats

POLICY = PolicyTree.from_mapping(
    {
        "domain": "d",
        "descriptors": [
            {"key": "a", "rate_limit": {"unit": "minute", "requests_per_unit": 5, "name": "a"}},
            {
                "key": "b",
                "rate_limit": {
                    "unit": "minute",
                    "requests_per_unit": 9,
                    "replaces": [{"name": "a"}],
                },
            },
            {"key": "white"},
            {"key": "free", "rate_limit": {"unlimited": True}},
            {
                "key": "q",
                "quota_mode": True,
                "rate_limit": {"unit": "hour", "requests_per_unit": 1},
            },
        ],
    }
)
_Override = ratelimit_pb2.RateLimitDescriptor.RateLimitOverride


def descriptor(key: str, value: str = "v", *, hits: int | None = None, limit: Any = None) -> Any:
    d = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=key, value=value)]
    )
    if hits is not None:
        d.hits_addend.value = hits
    if limit is not None:
        d.limit.CopyFrom(limit)
    return d


def plan(*descriptors: Any, domain: str = "d", hits_addend: int = 0, **options: Any) -> RequestPlan:
    settings = {"near_limit_ratio": 0.8, "override_algorithm": Algorithm.TOKEN_BUCKET}
    settings |= {"quota_mode": False} | options
    planner = Planner(POLICY, MemoryStats(), **settings)
    request = rls_pb2.RateLimitRequest(
        domain=domain, descriptors=list(descriptors), hits_addend=hits_addend
    )
    return planner.plan(request, request.ByteSize())


def counted(answer: bytes | Counted) -> Counted:
    assert isinstance(answer, Counted)
    return answer


def test_hits_addend_is_the_descriptors_own_else_the_requests_else_one() -> None:
    own, shared = plan(descriptor("a", hits=4), descriptor("a", "w"), hits_addend=3).answers
    assert (counted(own).hits, counted(shared).hits) == (4, 3)
    (alone,) = plan(descriptor("a")).answers
    assert counted(alone).hits == 1


def test_replaced_whitelisted_and_unmatched_descriptors_count_nothing() -> None:
    planned = plan(descriptor("a"), descriptor("b"), descriptor("white"), descriptor("nope"))
    replaced, replacing, white, unmatched = planned.answers
    assert (replaced, white, unmatched) == (STATUS_OK, STATUS_OK, STATUS_OK)
    assert [h.counter.limit for h in planned.hits] == [Limit(9, Unit.MINUTE)]
    assert counted(replacing).counted == planned.hits


def test_unlimited_rules_count_no_counter_but_keep_their_stats() -> None:
    planned = plan(descriptor("free"))
    (answer,) = planned.answers
    assert counted(answer).limits == ()
    assert planned.hits == ()


def test_overrides_are_limits_keyed_by_the_full_path() -> None:
    override = _Override(requests_per_unit=3, unit=rls_pb2.RateLimitResponse.RateLimit.SECOND)
    planned = plan(
        descriptor("nope", "x", limit=override), override_algorithm=Algorithm.FIXED_WINDOW
    )
    (hit,) = planned.hits
    assert hit.counter.limit == Limit(3, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW)
    assert hit.counter.entries == (("nope", "x"),)


def test_quota_mode_is_the_rules_or_global() -> None:
    rule_quota, plain = plan(descriptor("q"), descriptor("a")).answers
    assert (counted(rule_quota).quota, counted(plain).quota) == (True, False)
    (everything,) = plan(descriptor("a"), quota_mode=True).answers
    assert counted(everything).quota


def test_an_unknown_domain_is_all_ok_and_counted_by_the_caller() -> None:
    planned = plan(descriptor("a"), descriptor("b"), domain="elsewhere")
    assert planned.answers == (STATUS_OK, STATUS_OK)
    assert planned.unknown_domain is not None
    assert planned.hits == ()


@pytest.mark.parametrize(
    ("domain", "descriptors", "message"),
    [
        ("", [descriptor("a")], "rate limit domain must not be empty"),
        ("d", [], "rate limit descriptor list must not be empty"),
        ("d", [descriptor("a")] * (MAX_DESCRIPTORS + 1), "more than 1024 descriptors"),
        ("d", [descriptor("a", limit=_Override(requests_per_unit=1))], "descriptor 0: limit"),
    ],
)
def test_malformed_requests_are_refused(domain: str, descriptors: list[Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        plan(*descriptors, domain=domain)
