"""RlqsQuotas on typed values: the in-memory store, a hand-set clock, no transport."""

from __future__ import annotations

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.errors import RequestError
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
POLICY = PolicyTree.from_mapping(
    {
        "domain": "edge",
        "descriptors": [
            {"key": "name", "rate_limit": {"unit": "minute", "requests_per_unit": 60}},
            {
                "key": "shadow",
                "shadow_mode": True,
                "rate_limit": {"unit": "second", "requests_per_unit": 1},
            },
            {"key": "free", "rate_limit": {"unlimited": True}},
        ],
    }
)
ACME: BucketKey = (("name", "acme"),)
COUNTER = Counter("edge", ACME, Limit(60, Unit.MINUTE))


def usage(bucket: BucketKey, allowed: int = 0, denied: int = 0, elapsed_s: int = 5) -> Usage:
    return Usage("edge", (BucketUsage(bucket, allowed, denied, elapsed_s * NS_PER_SECOND),))


def quotas(store: MemoryStore | None = None) -> tuple[RlqsQuotas, MemoryStore]:
    store = store or MemoryStore()
    return RlqsQuotas(StoreGate(store), lambda: POLICY, SETTINGS), store


async def remaining(store: MemoryStore, now: int) -> int:
    (outcome,) = await store.debit([Hit(COUNTER, 0)], now)
    return outcome.remaining


async def test_first_report_with_zero_elapsed_subscribes_and_debits() -> None:
    q, store = quotas()
    stream = q.open_stream()
    (action,) = await q.report(stream, usage(ACME, allowed=1, elapsed_s=0), START)
    assert isinstance(action.strategy, TokenBucket)
    assert action.bucket == ACME
    assert action.ttl_ns == SETTINGS.ttl_ns
    assert action.strategy.max_tokens == 59  # the one request already admitted is debited
    assert await remaining(store, START) == 59


async def test_usage_beyond_the_limit_puts_the_counter_in_debt_and_denies_until_repaid() -> None:
    q, _ = quotas()
    stream = q.open_stream()
    (action,) = await q.report(stream, usage(ACME, allowed=70), START)
    # 60/min: 10 in debt, repaid after 11 s (one more token admissible)
    assert action.strategy is Blanket.DENY_ALL
    assert action.ttl_ns == 11 * NS_PER_SECOND + SETTINGS.deny_grace_ns
    assert q.due() == START + 11 * NS_PER_SECOND
    assert await q.refresh(START + 10 * NS_PER_SECOND) == []
    (push,) = await q.refresh(START + 11 * NS_PER_SECOND)
    assert push.stream == stream
    assert push.domain == "edge"
    (pushed,) = push.actions
    assert isinstance(pushed.strategy, TokenBucket)
    assert pushed.strategy.max_tokens == 1


async def test_unmatched_unlimited_and_shadow_buckets_are_allowed_and_only_shadow_counts() -> None:
    q, store = quotas()
    stream = q.open_stream()
    buckets: list[BucketKey] = [(("nope", "x"),), (("free", "x"),), (("shadow", "x"),)]
    report = Usage("edge", tuple(BucketUsage(b, 5) for b in buckets))
    actions = await q.report(stream, report, START)
    assert [a.strategy for a in actions] == [Blanket.ALLOW_ALL] * 3
    shadow = Counter("edge", (("shadow", "x"),), Limit(1, Unit.SECOND))
    (outcome,) = await store.debit([Hit(shadow, 0)], START)
    assert outcome.remaining == 0  # counted: 5 admitted against 1/s
    assert await remaining(store, START) == 60  # the others touched nothing


async def test_two_envoys_share_one_counter_and_the_first_is_pushed_its_smaller_share() -> None:
    q, _ = quotas()
    one, two = q.open_stream(), q.open_stream()
    (first,) = await q.report(one, usage(ACME, allowed=0, denied=1), START)
    assert isinstance(first.strategy, TokenBucket)
    assert first.strategy.max_tokens == 60
    (second,) = await q.report(two, usage(ACME, allowed=0, denied=1), START)
    assert isinstance(second.strategy, TokenBucket)
    assert second.strategy.max_tokens == 30
    assert q.sharers(COUNTER) == 2
    (push,) = await q.refresh(START)
    assert push.stream == one
    (pushed,) = push.actions
    assert pushed.strategy == second.strategy


async def test_a_closed_stream_hands_its_share_back() -> None:
    q, _ = quotas()
    one, two = q.open_stream(), q.open_stream()
    await q.report(one, usage(ACME, denied=1), START)
    await q.report(two, usage(ACME, denied=1), START)
    await q.refresh(START)
    q.close_stream(two, START + 1)
    assert q.sharers(COUNTER) == 1
    (push,) = await q.refresh(START + 1)
    assert push.stream == one
    (pushed,) = push.actions
    assert isinstance(pushed.strategy, TokenBucket)
    assert pushed.strategy.tokens_per_fill * NS_PER_SECOND / pushed.strategy.fill_interval_ns == 1
    assert pushed.strategy.tokens_per_fill == 60  # one sharer again: 60 per minute


async def test_an_idle_bucket_is_abandoned_and_resubscribes_on_its_next_report() -> None:
    q, _ = quotas()
    stream = q.open_stream()
    await q.report(stream, usage(ACME, allowed=1), START)
    (still,) = await q.report(stream, usage(ACME), START + 5 * NS_PER_SECOND)
    assert still.strategy is not None
    (gone,) = await q.report(stream, usage(ACME), START + 10 * NS_PER_SECOND)
    assert gone == BucketAction(ACME, None)
    assert q.sharers(COUNTER) == 0
    (back,) = await q.report(stream, usage(ACME, allowed=1), START + 15 * NS_PER_SECOND)
    assert isinstance(back.strategy, TokenBucket)
    assert q.sharers(COUNTER) == 1


async def test_a_reconnect_is_a_new_stream_and_the_old_one_stops_counting_once_closed() -> None:
    q, _ = quotas()
    old = q.open_stream()
    await q.report(old, usage(ACME, allowed=1), START)
    new = q.open_stream()
    await q.report(new, usage(ACME, allowed=1), START + 1)
    q.close_stream(old, START + 2)
    assert q.sharers(COUNTER) == 1


async def test_a_reload_resolves_buckets_again() -> None:
    policy = [POLICY]
    store = MemoryStore()
    q = RlqsQuotas(StoreGate(store), lambda: policy[0], SETTINGS)
    stream = q.open_stream()
    (limited,) = await q.report(stream, usage(ACME, allowed=1), START)
    assert isinstance(limited.strategy, TokenBucket)
    policy[0] = PolicyTree.from_mapping({"domain": "edge", "descriptors": [{"key": "other"}]})
    (free,) = await q.report(stream, usage(ACME, allowed=1), START + 1)
    assert free.strategy is Blanket.ALLOW_ALL
    assert q.sharers(COUNTER) == 0


async def test_malformed_reports_are_refused() -> None:
    q, _ = quotas()
    stream = q.open_stream()
    for bad in (
        Usage("", ()),
        Usage("edge", (BucketUsage((("k" * 300, "v"),), 1),)),
        Usage("edge", (BucketUsage(tuple((f"k{i}", "v") for i in range(17)), 1),)),
    ):
        try:
            await q.report(stream, bad, START)
        except RequestError:
            continue
        raise AssertionError(f"accepted {bad}")
    try:
        await q.report(999, usage(ACME), START)
    except RequestError:
        return
    raise AssertionError("accepted a report on a stream never opened")


async def test_a_denial_still_in_debt_at_its_recheck_is_pushed_again_with_a_new_ttl() -> None:
    q, store = quotas()
    one, two = q.open_stream(), q.open_stream()
    await q.report(one, usage(ACME, allowed=70), START)  # 10 in debt: re-check after 11 s
    await q.report(two, usage(ACME, allowed=30), START)  # 40 in debt now
    pushes = await q.refresh(START + 11 * NS_PER_SECOND)
    assert {p.stream for p in pushes} == {one, two}
    for push in pushes:
        (action,) = push.actions
        assert action.strategy is Blanket.DENY_ALL
        assert action.ttl_ns == 30 * NS_PER_SECOND + SETTINGS.deny_grace_ns
    assert await remaining(store, START + 11 * NS_PER_SECOND) == 0


async def test_admissions_are_debited_ahead_at_the_assigned_pace_and_the_report_settles() -> None:
    q, store = quotas()
    stream = q.open_stream()
    await q.report(stream, usage(ACME, allowed=1, elapsed_s=0), START)
    due = q.due()  # pacing: one Envoy at 60/min is expected to admit 1/s
    assert due is not None
    assert due <= START
    for step in range(5):  # the pace steps of 2 s (each covers one pace interval)
        await q.refresh(START + step * SETTINGS.pace_interval_ns)
    # debited ahead: 2 s at 1/s, one at a time, each against a counter refilled to its capacity
    assert q.debited_ahead(stream, "edge", ACME) == 2
    assert await remaining(store, START + 2 * NS_PER_SECOND) == 59
    (action,) = await q.report(stream, usage(ACME, allowed=5), START + 5 * NS_PER_SECOND)
    # 5 admitted, 2 of them already debited: 3 more, against a counter refilled to 60
    assert await remaining(store, START + 5 * NS_PER_SECOND) == 57
    assert isinstance(action.strategy, TokenBucket)


async def test_a_capped_counter_does_not_see_a_debt_the_envoys_never_ran_up() -> None:
    # 60/min with capacity 60: an Envoy admitting its full rate for a minute, reported once,
    # would meet a counter capped at 60 and seem 60 in debt; paced, it is not.
    q, _ = quotas()
    stream = q.open_stream()
    await q.report(stream, usage(ACME, allowed=60, elapsed_s=0), START)  # the whole burst
    for step in range(1, 121):  # every pace interval (0.5 s) for a minute
        await q.refresh(START + step * SETTINGS.pace_interval_ns)
    # Its bucket (1 token, 1/s from the re-check at 1 s) admitted 60 more by 60 s.
    (action,) = await q.report(stream, usage(ACME, allowed=60), START + 60 * NS_PER_SECOND)
    # Debited ahead, the counter is at most the bucket's one token in debt: denied ~2 s, not
    # the minute an unpaced report of 60 against a capped counter would cost.
    assert action.ttl_ns <= 2 * NS_PER_SECOND + SETTINGS.deny_grace_ns
