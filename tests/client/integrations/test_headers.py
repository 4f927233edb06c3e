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
