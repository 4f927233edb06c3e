"""Answerer: plans and outcomes in, the response and its stats out (no store, no transport)."""

from __future__ import annotations

from typing import Any

from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.rls_answer import Answerer
from ratekeeper.protocol.rls_plan import STATUS_OK, Counted, LimitAnswer
from ratekeeper.protocol.stats import Event, MemoryStats, RuleCounts

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
HEADERS = ("x-limit", "x-remaining", "x-reset")


def limit_answer(amount: int, unit: Unit = Unit.MINUTE) -> LimitAnswer:
    proto_unit = rls_pb2.RateLimitResponse.RateLimit.Unit.Value(unit.name)
    return LimitAnswer(Limit(amount, unit), rls_wire.current_limit(amount, proto_unit, ""), amount)


def descriptor(*limits: LimitAnswer, shadow: bool = False, quota: bool = False) -> Counted:
    return Counted(1, RuleCounts(), limits, (), shadow, quota)


def outcome(allowed: bool, remaining: int, reset_s: int = 30) -> Outcome:
    return Outcome(allowed, remaining, reset_s * NS_PER_SECOND, 0)


def answer(
    answers: list[bytes | Counted], outcomes: list[Outcome] | None, **options: Any
) -> tuple[Any, MemoryStats]:
    stats = MemoryStats()
    settings = {"shadow_mode": False, "fail_closed": False, "headers": None} | options
    raw = Answerer(stats, **settings).respond(answers, outcomes)
    return rls_pb2.RateLimitResponse.FromString(raw), stats


def test_a_rule_with_several_limits_reports_the_most_restrictive() -> None:
    both = descriptor(limit_answer(10, Unit.SECOND), limit_answer(100))
    response, _ = answer([both], [outcome(True, 7), outcome(True, 3)])
    (status,) = response.statuses
    assert (status.current_limit.requests_per_unit, status.limit_remaining) == (100, 3)
    response, _ = answer([both], [outcome(False, 0, 1), outcome(True, 3)])
    assert response.statuses[0].current_limit.requests_per_unit == 10
    assert response.overall_code == OVER
    assert both.counts.over_limit == 1
    assert both.counts.total_hits == 2


def test_a_failed_store_is_answered_per_fail_closed() -> None:
    for fail_closed, code in ((False, OK), (True, OVER)):
        response, _ = answer(
            [STATUS_OK, descriptor(limit_answer(5))], None, fail_closed=fail_closed
        )
        assert response.overall_code == code
        assert [s.code for s in response.statuses] == [OK, code]


def test_shadow_mode_answers_over_as_ok_and_counts_it() -> None:
    rule_shadow = descriptor(limit_answer(5), shadow=True)
    response, _ = answer([rule_shadow], [outcome(False, 0)])
    assert response.overall_code == OK
    assert (rule_shadow.counts.over_limit, rule_shadow.counts.shadow_mode) == (1, 1)
    response, stats = answer([descriptor(limit_answer(5))], [outcome(False, 0)], shadow_mode=True)
    assert response.overall_code == OK
    assert stats.events[Event.GLOBAL_SHADOW_MODE] == 1


def test_quota_descriptors_make_the_request_over_only_when_all_are_over() -> None:
    quotas = [descriptor(limit_answer(1), quota=True), descriptor(limit_answer(5), quota=True)]
    response, _ = answer(list(quotas), [outcome(False, 0), outcome(True, 4)])
    assert response.overall_code == OK
    assert [s.code for s in response.statuses] == [OVER, OK]
    response, _ = answer(list(quotas), [outcome(False, 0), outcome(False, 0)])
    assert response.overall_code == OVER


def test_headers_describe_the_first_over_status_else_the_least_remaining() -> None:
    two = [descriptor(limit_answer(10)), descriptor(limit_answer(20))]
    response, _ = answer(list(two), [outcome(True, 6), outcome(True, 2, 45)], headers=HEADERS)
    headers = {h.key: h.value for h in response.response_headers_to_add}
    assert headers == {"x-limit": "20", "x-remaining": "2", "x-reset": "45"}
    response, _ = answer(list(two), [outcome(False, 0, 12), outcome(False, 0)], headers=HEADERS)
    headers = {h.key: h.value for h in response.response_headers_to_add}
    assert headers == {"x-limit": "10", "x-remaining": "0", "x-reset": "12"}


def test_near_limit_counts_hits_that_leave_little() -> None:
    near = descriptor(LimitAnswer(Limit(10, Unit.MINUTE), b"", 8))
    answer([near], [outcome(True, 1)])  # 9 of 10 used: past the near mark of 8
    answer([near], [outcome(True, 5)])
    assert (near.counts.within_limit, near.counts.near_limit) == (2, 1)
