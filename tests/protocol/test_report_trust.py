"""Issue 16's attacks on the report logic, performed: each must fail.

Bounds under test (``ReportSettings`` defaults, ``DEBT_HORIZON_PERIODS``): counts above
``max_count`` refuse that key alone; counts above ``count_bound_intervals`` × what the policy
admits in ``max_interval_ns`` are clamped; a bucket's debt is at most two periods of refill; a
report number more than ``sequence_window`` past the client's last one is refused.
"""

from __future__ import annotations

import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.token_bucket import DEBT_HORIZON_PERIODS
from ratekeeper.errors import RequestError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.stats import Event, MemoryStats
from tests.protocol.test_report import POLICY, Clocked, key

ALICE = [("user", "alice")]
#: The counter the configured 10/s rule counts ALICE against (what RLS decides on).
ALICE_COUNTER = Counter("api", (("user", "alice"),), Limit(10))
#: Two periods of a 10/s bucket: the longest a report can block it once empty (+ one token).
HORIZON_NS = DEBT_HORIZON_PERIODS * NS_PER_SECOND + NS_PER_SECOND // 10


def setup() -> tuple[Clocked, MemoryStore, MemoryStats]:
    store, stats = MemoryStore(), MemoryStats()
    processor = ReportProcessor(StoreGate(store), lambda: POLICY, ReportSettings(), stats)
    return Clocked(processor), store, stats


async def rls_allows(store: MemoryStore, now: int) -> bool:
    return (await store.hit([Hit(ALICE_COUNTER, 1)], now))[0].allowed


@pytest.mark.parametrize("admitted", [2**64 - 1, -1])
async def test_an_out_of_range_count_refuses_that_key_and_applies_nothing(admitted: int) -> None:
    send, store, stats = setup()
    (answer,) = (await send("attacker", key(ALICE, admitted=admitted))).instructions
    assert "counts must be" in answer.error
    assert (answer.valid_for_ns, answer.reject_for_ns) == (0, 0)
    assert stats.events[Event.REPORT_KEY_REFUSED] == 1
    assert len(store) == 0  # nothing applied
    assert await rls_allows(store, send.now)


async def test_a_huge_count_is_clamped_and_blocks_no_longer_than_the_horizon() -> None:
    send, store, stats = setup()
    (answer,) = (await send("attacker", key(ALICE, admitted=10**11))).instructions
    assert answer.error == ""
    assert 0 < answer.reject_for_ns <= HORIZON_NS
    assert stats.events[Event.REPORT_COUNT_CLAMPED] == 1
    assert not await rls_allows(store, send.now)
    send.advance(HORIZON_NS / NS_PER_SECOND)
    assert await rls_allows(store, send.now)  # admitted again within the horizon
    (after,) = (await send("tenant", key(ALICE, admitted=0))).instructions
    assert after.reject_for_ns == 0


async def test_repeated_huge_reports_still_block_no_longer_than_the_horizon() -> None:
    send, store, _ = setup()
    for _ in range(50):
        (answer,) = (await send("attacker", key(ALICE, admitted=10**11))).instructions
        assert answer.reject_for_ns <= HORIZON_NS
    send.advance(HORIZON_NS / NS_PER_SECOND)
    assert await rls_allows(store, send.now)


async def test_one_poisoned_key_leaves_the_other_fifty_answered_and_applied() -> None:
    send, store, _ = setup()
    good = [key([("user", f"u{n}")], admitted=25) for n in range(50)]
    poisoned = key([("user", "mallory")], admitted=2**64 - 1)
    answer = await send("c1", *good[:25], poisoned, *good[25:])
    assert len(answer.instructions) == 51
    assert answer.instructions[25].error
    rest = answer.instructions[:25] + answer.instructions[26:]
    assert all(not i.error and i.reject_for_ns == 1_500_000_000 for i in rest)  # 15 of debt
    assert len(store) == 50


async def test_a_spoofed_sequence_jump_is_refused_and_the_victim_still_counts() -> None:
    send, _, stats = setup()
    await send("victim", key(ALICE, admitted=1), sequence=1)
    with pytest.raises(RequestError, match="jumps more than"):
        await send("victim", key([("user", "x")]), sequence=2**64 - 1)
    assert stats.events[Event.REPORT_SEQUENCE_REFUSED] == 1
    send.advance(0.1)
    (answer,) = (await send("victim", key(ALICE, admitted=1000), sequence=2)).instructions
    assert answer.reject_for_ns > 0  # 1,000 hits on 10/s: rejected, not a silent repeat


async def test_a_spoof_before_the_victim_is_seen_cannot_make_its_reports_repeats() -> None:
    send, _, _ = setup()
    await send("victim", key([("user", "x")]), sequence=2**64 - 1)  # applied, not remembered
    (answer,) = (await send("victim", key(ALICE, admitted=1000), sequence=1)).instructions
    assert answer.reject_for_ns > 0
    # numbering still works for the victim: its resend is a repeat
    send.advance(3)
    (again,) = (await send("victim", key(ALICE, admitted=1000), sequence=1)).instructions
    assert again.reject_for_ns == 0


async def test_a_legitimate_client_may_skip_numbers_over_time() -> None:
    """The window grows with the time since the last report: an outage is no lockout."""
    send, _, _ = setup()
    await send("c1", key(ALICE, admitted=1), sequence=1)
    send.advance(60)  # 6,000 minimum intervals
    await send("c1", key(ALICE, admitted=1), sequence=5000)


async def test_a_fleets_debt_is_carried_but_one_client_is_still_held_to_the_horizon() -> None:
    """Each client reporting the key may add one round of its local allowance to the debt
    (``b + r·3·I``: 13 tokens of a 10/s bucket at 100 ms), so a fleet's optimism is charged back
    rather than forgiven; a single client stays within the horizon whatever it reports."""
    send, _, _ = setup()
    (alone,) = (await send("attacker", key(ALICE, admitted=10**11))).instructions
    assert alone.reject_for_ns <= HORIZON_NS
    for n in range(4):
        await send(f"replica-{n}", key(ALICE, admitted=10))
    (fleet,) = (await send("replica-4", key(ALICE, admitted=10))).instructions
    assert fleet.reject_for_ns > HORIZON_NS  # 6 clients: more than 2 periods of debt carried
    assert fleet.reject_for_ns <= 6 * 13 * NS_PER_SECOND // 10 + NS_PER_SECOND // 10
