"""RLQS after gaps: a stalled server, a stalled Envoy, reports queued or long apart.

A bug report (docs/envoy.md, failures): after the RLQS Envoy and its server were both frozen
for 5 s, a bucket under a 1,000,000/s rule offering a few thousand requests a second was
answered ``DENY_ALL``. A new bucket is debited ahead at its share's full rate, and the first
pace step after the stall debited the whole gap at once, against a counter whose refill had
stopped at its capacity. Whatever the gaps, a key well under its rule is never denied.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.rlqs import RlqsQuotas, RlqsSettings
from ratekeeper.protocol.rlqs_values import (
    Blanket,
    BucketAction,
    BucketKey,
    BucketUsage,
    TokenBucket,
    Usage,
)

START = 1_700_000_000 * NS_PER_SECOND
SETTINGS = RlqsSettings()
PER_SECOND = {"unit": "second", "requests_per_unit": 1_000_000}
PER_MINUTE = {"unit": "minute", "requests_per_unit": 60}
RULES = {"big": (PER_SECOND, 1_000_000, 1_000_000), "small": (PER_MINUTE, 60, 60)}


def policy(rule: dict[str, object]) -> PolicyTree:
    return PolicyTree.from_mapping(
        {"domain": "rl", "descriptors": [{"key": "user", "rate_limit": rule}]}
    )


USER: BucketKey = (("user", "u1"),)


def report(allowed: int, elapsed_ns: int) -> Usage:
    return Usage("rl", (BucketUsage(USER, allowed, 0, elapsed_ns),))


async def test_a_both_stalled_5_s_gap_on_a_new_bucket_is_not_a_denial() -> None:
    rules = policy(PER_SECOND)
    q = RlqsQuotas(StoreGate(MemoryStore()), lambda: rules, SETTINGS)
    stream = q.open_stream()
    await q.report(stream, report(1, 0), START)  # subscribes: paced at the full 1,000,000/s
    await q.refresh(START + NS_PER_SECOND // 2)
    stalled = START + NS_PER_SECOND // 2 + 5 * NS_PER_SECOND  # Envoy and server frozen 5 s
    assert await q.refresh(stalled) == []
    assert q.debited_ahead(stream, "rl", USER) <= 1_000_000  # one step's forecast, not five
    (action,) = await q.report(stream, report(4_439, 6 * NS_PER_SECOND), stalled + 1)
    assert isinstance(action.strategy, TokenBucket), action
    assert action.strategy.max_tokens >= 500_000


async def test_reports_queued_behind_a_stalled_server_measure_envoy_s_interval() -> None:
    rules = policy(PER_SECOND)
    q = RlqsQuotas(StoreGate(MemoryStore()), lambda: rules, SETTINGS)
    stream = q.open_stream()
    await q.report(stream, report(1, 0), START)
    await q.report(stream, report(200, 5 * NS_PER_SECOND), START + 5 * NS_PER_SECOND)
    # Two reports read back to back after a stall: 200 over Envoy's 5 s, not over 1 ns.
    later = START + 10 * NS_PER_SECOND
    await q.report(stream, report(200, 5 * NS_PER_SECOND), later)
    await q.report(stream, report(200, 5 * NS_PER_SECOND), later + 1)
    for step in range(1, 5):
        await q.refresh(later + step * SETTINGS.pace_interval_ns)
    assert q.debited_ahead(stream, "rl", USER) <= 200  # 40/s for 2 s, not 1,000,000/s


#: One event: a pace step after ``gap`` ns, or stream ``which``'s report after ``gap`` ns
#: (``queued``: Envoy's interval is 5 s whatever the server's gap, as after a server stall).
_gaps = st.one_of(
    st.integers(0, SETTINGS.pace_interval_ns * 3),
    st.sampled_from([1, 5 * NS_PER_SECOND, 6 * NS_PER_SECOND, 30 * NS_PER_SECOND]),
)
_events = st.lists(
    st.tuples(st.sampled_from(["step", "report"]), _gaps, st.integers(0, 1), st.booleans()),
    max_size=40,
)


async def _run(rule: str, streams: int, events: list[tuple[str, int, int, bool]]) -> None:
    limit, rate, capacity = RULES[rule]
    rules = policy(limit)
    q = RlqsQuotas(StoreGate(MemoryStore()), lambda: rules, SETTINGS)
    ids = [q.open_stream() for _ in range(streams)]
    now = START
    last = dict.fromkeys(ids, now)
    answers: list[BucketAction] = []
    for stream in ids:
        answers.extend(await q.report(stream, report(1, 0), now))
    for kind, gap, which, queued in events:
        now += gap
        if kind == "step":
            answers.extend(a for push in await q.refresh(now) for a in push.actions)
            continue
        stream = ids[which % streams]
        span = now - last[stream]
        elapsed = 5 * NS_PER_SECOND if queued else span
        # Well under the rule: an eighth of its rate since this stream's last report, at most
        # an eighth of its capacity per report (two streams: a quarter together).
        allowed = min(rate * span // (8 * NS_PER_SECOND), capacity // 8)
        last[stream] = now
        answers.extend(await q.report(stream, report(allowed, elapsed), now))
    for action in answers:
        assert action.strategy is not Blanket.DENY_ALL, (action, events)
        if isinstance(action.strategy, TokenBucket):
            assert action.strategy.max_tokens >= capacity // (4 * streams), (action, events)


@settings(max_examples=200, deadline=None)
@given(rule=st.sampled_from(sorted(RULES)), streams=st.integers(1, 2), events=_events)
def test_after_any_gaps_a_key_well_under_its_rule_is_never_denied(
    rule: str, streams: int, events: list[tuple[str, int, int, bool]]
) -> None:
    asyncio.run(_run(rule, streams, events))
