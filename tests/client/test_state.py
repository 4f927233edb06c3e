"""The sans-IO client state: decisions, report building and instruction applying, by hand."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratekeeper.client.state import LimiterState, assignment_of
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.limits import Limit, Unit, parse_limit
from ratekeeper.errors import ClientClosedError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import limit_to_spec, spec_to_limit

from .conftest import FakeClock

MS = 1_000_000


def answer(batch_size: int = 1, **fields: object) -> pb.ReportResponse:
    return pb.ReportResponse(instructions=[pb.KeyInstruction(**fields)] * batch_size)  # type: ignore[arg-type]


def drive(
    lim: LimiterState, clock: FakeClock, key: str, seconds: float, step_ms: float = 1
) -> list[int]:
    """Call ``allow`` every ``step_ms`` for ``seconds``; admitted count per whole second."""
    per_second = [0] * max(1, round(seconds))
    steps = round(seconds * 1000 / step_ms)
    for i in range(steps):
        if lim.allow(key):
            per_second[min(int(i * step_ms // 1000), len(per_second) - 1)] += 1
        clock.advance(step_ms / 1000)
    return per_second


def test_counts_are_reported_as_deltas_never_lost_or_twice(clock: FakeClock) -> None:
    lim = LimiterState("s1:1", limit="2/s")
    results = [lim.allow("k") for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert lim.acquire("k", 3).allowed is False
    (batch,) = lim.collect(clock())
    (entry,) = batch.request.keys
    assert (entry.admitted, entry.rejected) == (2, 6)
    assert entry.domain == "default"
    assert [(e.key, e.value) for e in entry.entries] == [("key", "k")]
    assert [spec_to_limit(s) for s in entry.limits] == [parse_limit("2/s")]
    assert lim.collect(clock()) == []  # nothing new
    clock.advance(1)
    assert lim.allow("k")
    (batch,) = lim.collect(clock())
    assert (batch.request.keys[0].admitted, batch.request.keys[0].rejected) == (1, 0)
    assert batch.request.interval_ns == 1000 * MS


def test_one_batch_per_owning_server(clock: FakeClock) -> None:
    servers = ["a:1", "b:1", "c:1"]
    lim = LimiterState(servers)
    for i in range(300):
        lim.allow(f"user{i}")
    batches = lim.collect(clock())
    assert sorted(b.server for b in batches) == servers
    assignment = assignment_of(servers)
    for batch in batches:
        for entry in batch.request.keys:
            name = entry.entries[0].value
            assert assignment.owner_of(key_hash(canonical_bytes("default", [("key", name)]))) == (
                batch.server
            )
    assert sum(len(b.request.keys) for b in batches) == 300


def test_reject_for_rejects_until_it_ends_then_the_local_limiter_decides(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="100/s")
    lim.allow("k")
    (batch,) = lim.collect(clock())
    lim.apply(batch, answer(reject_for_ns=500 * MS, valid_for_ns=300 * MS), clock())
    decision = lim.acquire("k")
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(0.5)
    clock.advance(0.499)
    assert not lim.allow("k")
    clock.advance(0.001)
    assert lim.allow("k")


def test_admit_rate_spreads_five_per_second_exactly(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="100/s burst 100")
    lim.allow("k")
    (batch,) = lim.collect(clock())
    lim.apply(batch, answer(admit_rate=5.0, valid_for_ns=10_000 * MS), clock())
    clock.advance(0.2)
    assert drive(lim, clock, "k", 3) == [5, 5, 5]


def test_granted_rate_expires_back_to_the_local_limiter(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="100/s burst 100")
    lim.allow("k")
    (batch,) = lim.collect(clock())
    lim.apply(batch, answer(admit_rate=1.0, valid_for_ns=300 * MS), clock())
    assert lim.acquire("k", 0).remaining == 1
    clock.advance(0.4)
    lim.collect(clock())  # the reporter's tick reverts expired instructions
    assert lim.acquire("k", 0).remaining == 100


def test_local_limiter_holds_one_client_to_the_policy(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="10/s burst 10")
    # the burst of 10 at once, then one every 100 ms for the 1.999 s left
    assert drive(lim, clock, "k", 2) == [19, 10]


def test_a_limit_of_zero_admits_nothing_and_no_limit_admits_everything(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit={"blocked*": "0/s", "slow*": "1/minute"})
    assert not any(lim.allow("blocked-1") for _ in range(10))
    assert lim.acquire("blocked-1").retry_after == float("inf")
    assert sum(lim.allow("slow-1") for _ in range(10)) == 1
    assert all(lim.allow("free") for _ in range(1000))
    assert lim.acquire("free").remaining is None


def test_server_limits_replace_the_local_ones(clock: FakeClock) -> None:
    lim = LimiterState("s:1")
    lim.allow("k")
    assert lim.acquire("k", 0).limit is None
    (batch,) = lim.collect(clock())
    server_limit = Limit(3, Unit.SECOND)
    lim.apply(batch, answer(limits=[limit_to_spec(server_limit)], valid_for_ns=MS), clock())
    decision = lim.acquire("k", 0)
    assert decision.limit == server_limit
    assert decision.remaining == 3


def test_idle_keys_are_pruned_and_late_counts_still_reported(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="100/s")
    lim.allow("k")
    lim.collect(clock())
    clock.advance(2)
    assert lim.collect(clock()) == []
    assert lim.tracked == 0
    assert lim.stats.pruned == 1
    # a hit counted into the pruned state by a thread that looked it up just before the prune
    (retired,) = lim._retired
    next(retired.admitted)
    (batch,) = lim.collect(clock())
    assert batch.request.keys[0].admitted == 1


def test_tracked_keys_are_bounded(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="1/s", max_keys=10)
    assert all(lim.allow(f"k{i}") for i in range(50))
    assert lim.tracked == 10
    assert lim.stats.untracked == 40


def test_reports_are_capped_and_the_rest_carried_over(clock: FakeClock) -> None:
    lim = LimiterState("s:1", max_keys_per_report=4)
    for i in range(10):
        lim.allow(f"k{i}")
    sizes = [sum(len(b.request.keys) for b in lim.collect(clock())) for _ in range(4)]
    assert sizes == [4, 4, 2, 0]


def test_descriptor_entry_keys_and_malformed_keys(clock: FakeClock) -> None:
    lim = LimiterState("s:1", domain="api")
    assert lim.allow((("user", "alice"), ("path", "/x")))
    (batch,) = lim.collect(clock())
    (entry,) = batch.request.keys
    assert entry.domain == "api"
    assert [(e.key, e.value) for e in entry.entries] == [("user", "alice"), ("path", "/x")]
    with pytest.raises(TypeError):
        lim.allow((("user",),))  # type: ignore[arg-type]


def test_closed_limiter_refuses_and_its_last_counts_are_collected(clock: FakeClock) -> None:
    lim = LimiterState("s:1")
    lim.allow("k")
    lim.mark_closed()
    with pytest.raises(ClientClosedError):
        lim.allow("k")
    (batch,) = lim.collect(clock())
    assert batch.request.keys[0].admitted == 1


def test_acquire_reports_remaining_and_retry_after(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="10/s burst 5")
    first = lim.acquire("k", 5)
    assert (first.allowed, first.remaining) == (True, 0)
    second = lim.acquire("k", 2)
    assert not second.allowed
    assert second.retry_after == pytest.approx(0.2)
    assert second.reset_after == pytest.approx(0.5)
    with pytest.raises(ValueError, match="hits"):
        lim.acquire("k", -1)


def test_an_unanswered_report_is_resent_and_new_counts_wait(clock: FakeClock) -> None:
    lim = LimiterState("s:1", report_interval=0.1)
    lim.allow("k")
    (first,) = lim.collect(clock())
    assert first.request.sequence == 1
    lim.failed(first)
    lim.allow("k")
    lim.allow("k")
    (again,) = lim.collect(clock())
    assert again is first  # the same report, same number: the server applies it once
    lim.apply(again, answer(valid_for_ns=MS), clock())
    (later,) = lim.collect(clock())
    assert later.request.sequence == 2
    assert later.request.keys[0].admitted == 2


def test_a_long_outage_is_forgiven_not_debited_at_once(clock: FakeClock) -> None:
    lim = LimiterState("s:1", report_interval=0.25)  # four cycles a second
    for _ in range(4):
        lim.allow("k")
        for batch in lim.collect(clock()):
            lim.failed(batch)
    assert lim.stats.failures == 4
    lim.allow("k")
    assert lim.collect(clock()) == []  # the backlog was dropped
    lim.allow("k")
    (batch,) = lim.collect(clock())
    assert batch.request.keys[0].admitted == 1


def test_a_check_counts_nothing_and_says_whether_a_hit_would_pass(clock: FakeClock) -> None:
    lim = LimiterState("s:1", limit="1/s")
    assert lim.acquire("k", 0).allowed
    assert lim.allow("k")
    check = lim.acquire("k", 0)
    assert not check.allowed
    assert check.retry_after == pytest.approx(1.0)
    (batch,) = lim.collect(clock())
    assert (batch.request.keys[0].admitted, batch.request.keys[0].rejected) == (1, 0)


# The clock fixture is shared by all examples; it only moves forward, which a fresh limiter per
# example does not mind.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("hit"), st.integers(0, 30), st.integers(1, 3)),
            st.tuples(st.just("cycle"), st.lists(st.booleans(), min_size=3, max_size=3)),
            st.tuples(st.just("wait"), st.integers(1, 3000)),
        ),
        max_size=60,
    )
)
def test_every_hit_is_counted_once_whatever_reports_fail(
    clock: FakeClock, steps: list[tuple[object, ...]]
) -> None:
    """Reports that fail are resent; the servers apply each (client, number) once."""
    lim = LimiterState(["a:1", "b:1", "c:1"], limit="50/s", report_interval=0.1)
    applied: dict[tuple[str, int], pb.ReportRequest] = {}
    streak = {"a:1": 0, "b:1": 0, "c:1": 0}
    counted = 0

    def cycle(answers: list[bool]) -> None:
        batches = lim.collect(clock())
        assert len({b.server for b in batches}) == len(batches)  # one report per server
        for batch in batches:
            # at most 5 failures in a row: fewer than the ~1 s after which a backlog is forgiven
            if answers[ord(batch.server[0]) - ord("a")] or streak[batch.server] >= 5:
                applied.setdefault((batch.server, batch.request.sequence), batch.request)
                lim.apply(batch, answer(len(batch.states), valid_for_ns=MS), clock())
                streak[batch.server] = 0
            else:
                lim.failed(batch)
                streak[batch.server] += 1

    for step in steps:
        if step[0] == "hit":
            _, key, hits = step
            decision = lim.acquire(f"k{key}", int(hits))  # type: ignore[call-overload]
            counted += hits if decision.allowed else 0  # type: ignore[operator]
        elif step[0] == "cycle":
            cycle(step[1])  # type: ignore[arg-type]
        else:
            clock.advance(int(step[1]) / 1000)  # type: ignore[call-overload]
    lim.mark_closed()
    for _ in range(8):  # the servers are back: a few cycles settle everything
        cycle([True, True, True])
    assert sum(k.admitted for r in applied.values() for k in r.keys) == counted
