"""Envoy RLS semantics over real gRPC on loopback, one table row per rule.

Each row starts a fresh server on :data:`CONFIG` (a hand-driven clock at 5.5 s past a minute),
sends its requests in order and compares a compact summary of every response:
``(overall_code, [status, ...])`` with a status ``(code,)`` when it carries no limit,
``(code, remaining)`` for an unlimited rule, and otherwise
``(code, requests_per_unit, unit, name, limit_remaining, duration_until_reset)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.config import PolicyTree
from ratekeeper.server.settings import AlgorithmMode
from tests.server.conftest import CONFIG, Start, descriptor

_Code = rls_pb2.RateLimitResponse.Code
_Unit = rls_pb2.RateLimitResponse.RateLimit.Unit
_Override = ratelimit_pb2.RateLimitDescriptor.RateLimitOverride
LIMIT_7_PER_HOUR = {"unit": "hour", "requests_per_unit": 7}


def summary(response: Any) -> tuple[str, list[tuple[Any, ...]]]:
    statuses: list[tuple[Any, ...]] = []
    for s in response.statuses:
        code = _Code.Name(s.code)
        if s.HasField("current_limit"):
            limit = s.current_limit
            statuses.append(
                (
                    code,
                    limit.requests_per_unit,
                    _Unit.Name(limit.unit),
                    limit.name,
                    s.limit_remaining,
                    s.duration_until_reset.seconds,
                )
            )
        else:
            statuses.append((code, s.limit_remaining) if s.limit_remaining else (code,))
    return _Code.Name(response.overall_code), statuses


K1 = descriptor(("key1", "a"))
OK, OVER = "OK", "OVER_LIMIT"


@dataclass
class Step:
    """One request and its expected summary; ``advance`` moves the clock first (seconds)."""

    descriptors: list[Any]
    expected: tuple[str, list[tuple[Any, ...]]]
    hits_addend: int = 0
    advance: float = 0.0
    domain: str = "test"


@dataclass
class Case:
    name: str
    steps: list[Step]
    settings: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "token bucket counts down, then over; reset is time until full",
        [
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 1, 30)])),
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 0, 60)])),
            Step([K1], (OVER, [(OVER, 2, "MINUTE", "", 0, 60)])),
        ],
    ),
    Case(
        "a rule's fixed window resets at the epoch-aligned minute, as the reference",
        [
            Step([descriptor(("window", "w"))], (OK, [(OK, 2, "MINUTE", "", 1, 55)])),
            Step([descriptor(("window", "w"))], (OK, [(OK, 2, "MINUTE", "", 0, 55)])),
            Step([descriptor(("window", "w"))], (OVER, [(OVER, 2, "MINUTE", "", 0, 55)])),
        ],
    ),
    Case(
        "envoy-compat mode counts every rule in a fixed window",
        [
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 1, 55)])),
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 0, 55)])),
            Step([K1], (OVER, [(OVER, 2, "MINUTE", "", 0, 55)])),
        ],
        {"algorithm": AlgorithmMode.FIXED_WINDOW},
    ),
    Case(
        "request hits_addend counts that many; 0 means 1",
        [
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 0, 60)]), hits_addend=2),
            Step([descriptor(("key1", "b"))], (OK, [(OK, 2, "MINUTE", "", 1, 30)]), hits_addend=0),
        ],
    ),
    Case(
        "a descriptor's own hits_addend wins; 0 there checks without counting",
        [
            Step([descriptor(("key1", "a"), hits=0)], (OK, [(OK, 2, "MINUTE", "", 2, 0)]), 5),
            Step([descriptor(("key1", "a"), hits=1)], (OK, [(OK, 2, "MINUTE", "", 1, 30)]), 5),
            Step([descriptor(("key1", "a"), hits=3)], (OVER, [(OVER, 2, "MINUTE", "", 1, 30)])),
        ],
    ),
    Case(
        "unlimited is OK with remaining 2**32-1 and no current_limit",
        [Step([descriptor(("unlimited", "u"))], (OK, [(OK, 2**32 - 1)]))] * 3,
    ),
    Case(
        "a whitelisted value, an unknown key and an unknown domain are plain OK",
        [
            Step([descriptor(("white", "x"))], (OK, [(OK,)])),
            Step([descriptor(("nope", "x"))], (OK, [(OK,)])),
            Step([K1], (OK, [(OK,)]), domain="elsewhere"),
        ],
    ),
    Case(
        "a rule in shadow mode is evaluated but never over",
        [
            Step([descriptor(("shadow", "s"))], (OK, [(OK, 1, "MINUTE", "", 0, 60)])),
            Step([descriptor(("shadow", "s"))], (OK, [(OK, 1, "MINUTE", "", 0, 60)])),
        ],
    ),
    Case(
        "global shadow mode answers overall OK, the status stays OVER_LIMIT (as the reference)",
        [
            Step([K1], (OK, [(OK, 2, "MINUTE", "", 0, 60)]), hits_addend=2),
            Step([K1], (OK, [(OVER, 2, "MINUTE", "", 0, 60)])),
        ],
        {"shadow_mode": True},
    ),
    Case(
        "replaces drops the replaced limit, which is not counted either",
        [
            Step(
                [descriptor(("named", "n")), descriptor(("bigger", "n"))],
                (OK, [(OK,), (OK, 5, "MINUTE", "bigger", 4, 12)]),
            ),
            Step([descriptor(("named", "n"))], (OK, [(OK, 1, "MINUTE", "base", 0, 60)])),
        ],
    ),
    Case(
        "overall_code is the OR of the descriptors",
        [
            Step(
                [descriptor(("key1", "a"), hits=3), descriptor(("key2", "a"))],
                (OVER, [(OVER, 2, "MINUTE", "", 2, 0), (OK, 5, "MINUTE", "", 4, 12)]),
            )
        ],
    ),
    Case(
        "a limit of 0 blocks everything",
        [Step([descriptor(("block", "b"))], (OVER, [(OVER, 0, "SECOND", "", 0, 0)]))],
    ),
    Case(
        "several limits: over if any is, reporting the most restrictive",
        [
            Step([descriptor(("multi", "m"))], (OK, [(OK, 2, "SECOND", "", 1, 1)])),
            Step([descriptor(("multi", "m"))], (OK, [(OK, 2, "SECOND", "", 0, 1)])),
            Step([descriptor(("multi", "m"))], (OVER, [(OVER, 2, "SECOND", "", 0, 1)])),
            Step([descriptor(("multi", "m"))], (OVER, [(OVER, 3, "MINUTE", "", 0, 59)]), advance=1),
        ],
    ),
    Case(
        "a RateLimitOverride is used directly, keyed by the full entries path",
        [
            Step(
                [descriptor(("any", "x"), limit=_Override(requests_per_unit=1, unit=_Unit.HOUR))],
                (OK, [(OK, 1, "HOUR", "", 0, 3600)]),
            ),
            Step(
                [descriptor(("any", "x"), limit=_Override(requests_per_unit=1, unit=_Unit.HOUR))],
                (OVER, [(OVER, 1, "HOUR", "", 0, 3600)]),
            ),
            Step(
                [descriptor(("any", "y"), limit=_Override(requests_per_unit=1, unit=_Unit.HOUR))],
                (OK, [(OK, 1, "HOUR", "", 0, 3600)]),
            ),
            Step(
                [descriptor(("any", "x"), limit=_Override(requests_per_unit=1, unit=_Unit.HOUR))],
                (OK, [(OK,)]),
                domain="unknown-domain",
            ),
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_rls_rule(serve: Start, case: Case) -> None:
    running = await serve(CONFIG, **case.settings)
    for number, step in enumerate(case.steps):
        running.clock.advance(step.advance)
        response = await running.ask(step.domain, *step.descriptors, hits_addend=step.hits_addend)
        assert summary(response) == step.expected, f"step {number}"


async def test_unlimited_and_unknown_descriptors_store_nothing(serve: Start) -> None:
    running = await serve(CONFIG)
    await running.ask("test", descriptor(("unlimited", "u")), descriptor(("white", "w")))
    await running.ask("nowhere", K1)
    assert running.server.components.metrics.render().count(b"ratekeeper_store_keys 0.0") == 1


async def test_an_unknown_domain_is_counted_per_descriptor(serve: Start) -> None:
    running = await serve(CONFIG)
    for _ in range(2):  # the second time from the plan cache
        response = await running.ask("nowhere", K1, descriptor(("key2", "b")))
        assert summary(response) == (OK, [(OK,), (OK,)])
    text = running.server.components.metrics.render().decode()
    assert 'ratekeeper_domain_not_found_total{domain="nowhere"} 4.0' in text


async def test_response_headers_come_from_the_least_remaining(serve: Start) -> None:
    running = await serve(CONFIG, limit_response_headers_enabled=True)
    response = await running.ask("test", descriptor(("key2", "a")), K1)
    headers = [(h.key, h.value) for h in response.response_headers_to_add]
    assert headers == [
        ("RateLimit-Limit", "2"),
        ("RateLimit-Remaining", "1"),
        ("RateLimit-Reset", "30"),
    ]


async def test_response_headers_come_from_the_descriptor_over(serve: Start) -> None:
    running = await serve(CONFIG, limit_response_headers_enabled=True, limit_reset_header="X-Reset")
    over = descriptor(("key2", "b"), hits=6)
    response = await running.ask("test", K1, over)
    headers = {h.key: h.value for h in response.response_headers_to_add}
    assert headers == {"RateLimit-Limit": "5", "RateLimit-Remaining": "5", "X-Reset": "0"}


async def test_no_headers_unless_enabled(serve: Start) -> None:
    running = await serve(CONFIG)
    response = await running.ask("test", K1)
    assert list(response.response_headers_to_add) == []


async def test_a_reload_voids_the_plans_cached_for_the_old_policy(serve: Start) -> None:
    running = await serve(CONFIG)
    first = await running.ask("test", K1)
    assert summary(first)[1][0][1] == 2  # key1: 2/minute
    holder = running.server.components.policy
    holder.policy = PolicyTree.from_mapping(
        {"domain": "test", "descriptors": [{"key": "key1", "rate_limit": LIMIT_7_PER_HOUR}]}
    )
    second = await running.ask("test", K1)
    assert summary(second)[1][0][1:3] == (7, "HOUR")


QA, QB = descriptor(("quota_a", "x")), descriptor(("quota_b", "x"))


def codes(response: Any) -> tuple[str, list[str]]:
    return (_Code.Name(response.overall_code), [_Code.Name(s.code) for s in response.statuses])


async def test_quota_mode_is_over_only_when_every_quota_descriptor_is(serve: Start) -> None:
    running = await serve(CONFIG)
    assert codes(await running.ask("test", QA, QB)) == ("OK", ["OK", "OK"])
    # quota_a (1/minute) is now over but quota_b is not: the request passes, the status says so.
    assert codes(await running.ask("test", QA, QB)) == ("OK", ["OVER_LIMIT", "OK"])
    # Alone, quota_a is every quota descriptor of the request.
    assert codes(await running.ask("test", QA)) == ("OVER_LIMIT", ["OVER_LIMIT"])


async def test_quota_mode_leaves_ordinary_descriptors_deciding_alone(serve: Start) -> None:
    running = await serve(CONFIG)
    block = descriptor(("block", "x"))  # 0/second: always over, not a quota
    assert codes(await running.ask("test", QB, block)) == ("OVER_LIMIT", ["OK", "OVER_LIMIT"])


async def test_global_quota_mode_makes_every_descriptor_a_quota(serve: Start) -> None:
    running = await serve(CONFIG, quota_mode=True)
    block = descriptor(("block", "x"))
    assert codes(await running.ask("test", K1, block)) == ("OK", ["OK", "OVER_LIMIT"])
    assert codes(await running.ask("test", block)) == ("OVER_LIMIT", ["OVER_LIMIT"])
