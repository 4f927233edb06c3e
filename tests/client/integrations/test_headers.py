"""The RateLimit header fields (draft-10) built from decisions."""

from __future__ import annotations

import math

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations import rate_limit_headers
from ratekeeper.core.limits import Limit, Unit


def test_fields_round_up_and_retry_after_is_never_before_t() -> None:
    limit = Limit(100, Unit.MINUTE)
    allowed = Decision(True, 99, 0.0, 0.6, limit)
    assert rate_limit_headers(allowed, 'we"ird') == [
        ("RateLimit-Policy", '"we\\"ird";q=100;w=60'),
        ("RateLimit", '"we\\"ird";r=99;t=1'),
    ]
    refused = Decision(False, 0, 2.2, 60.0, limit)
    assert rate_limit_headers(refused)[-1] == ("Retry-After", "3")
    never = Decision(False, 0, math.inf, 0.0, Limit(0, Unit.SECOND))
    assert rate_limit_headers(never)[-1] == ("Retry-After", "86400")


def test_no_known_limit_no_fields() -> None:
    assert rate_limit_headers(Decision(True, None, 0.0, 0.0, None)) == []


def test_a_refusal_names_the_limit_that_rejects_and_the_domain() -> None:
    from ratekeeper.client.base import BaseLimiter
    from ratekeeper.client.integrations.guard import Guard

    lim = BaseLimiter("127.0.0.1:1", domain="shop", limit="1/s; 1/minute")
    guard: Guard[str] = Guard(lim, lambda key: key)
    admitted = guard.check("k")
    assert admitted is not None
    assert admitted[0].allowed
    refused = guard.check("k")
    assert refused is not None
    assert not refused[0].allowed
    headers = dict(refused[1])
    assert headers["RateLimit-Policy"] == '"shop";q=1;w=60'  # the minute waits longest
    assert int(headers["Retry-After"]) > 50
