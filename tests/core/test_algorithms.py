"""The strategy table and what every algorithm promises alike."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.algorithms import STRATEGIES, peek
from ratekeeper.core.limits import Algorithm, Limit, Unit

from .strategies import (
    FAST,
    FIFTY_YEARS_NS,
    THOROUGH,
    TODAY_NS,
    arrivals,
    drive,
    limits,
    replay,
    settle,
    starts,
    times,
)

TOKEN_BUCKET = Algorithm.TOKEN_BUCKET


def test_every_algorithm_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(Algorithm)


def _full(limit: Limit) -> int:
    """Hits a fresh state admits at one instant."""
    return limit.capacity if limit.algorithm is Algorithm.TOKEN_BUCKET else limit.amount


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_fresh_state_admits_its_capacity_at_once_then_refuses(algorithm: Algorithm) -> None:
    limit = Limit(5, Unit.MINUTE, algorithm=algorithm)
    strategy = STRATEGIES[algorithm]
    state = strategy.new(limit, TODAY_NS)
    assert peek(state, limit, TODAY_NS).remaining == 5
    assert strategy.hit(state, limit, TODAY_NS, 5).allowed
    assert not strategy.hit(state, limit, TODAY_NS, 1).allowed
    assert peek(state, limit, TODAY_NS).retry_after_ns > 0


@FAST
@given(limits(), st.integers(1, 50), starts())
def test_debit_exhausts_every_algorithm(limit: Limit, extra: int, now: int) -> None:
    strategy = STRATEGIES[limit.algorithm]
    state = strategy.new(limit, now)
    strategy.debit(state, limit, now, _full(limit) + extra)
    outcome = peek(state, limit, now)
    assert outcome.remaining == 0
    assert outcome.retry_after_ns != 0
    assert not strategy.hit(state, limit, now, 1).allowed


@THOROUGH
@given(st.data(), limits())
def test_peek_leaves_the_state_untouched(data: st.DataObject, limit: Limit) -> None:
    """A peek neither counts nor refills nor rolls: the state compares equal afterwards, and
    the peek answers what a zero-hit check on a copy answers."""
    state, now = settle(data, limit)
    later = now + data.draw(st.integers(0, 3 * limit.period_ns))
    strategy = STRATEGIES[limit.algorithm]
    before = replace(state)
    outcome = peek(state, limit, later)
    assert state == before
    assert outcome == strategy.hit(replace(state), limit, later, 0)


@FAST
@given(st.data(), limits())
def test_whole_periods_later_nothing_changes(data: st.DataObject, limit: Limit) -> None:
    """Decisions depend on the time within the epoch-aligned period, not on its magnitude."""
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit, reports=True))
    shift = FIFTY_YEARS_NS - FIFTY_YEARS_NS % limit.period_ns
    assert drive(limit, start + shift, sequence) == drive(limit, start, sequence)


@THOROUGH
@given(st.data(), limits(bursts=False).filter(lambda limit: limit.algorithm is not TOKEN_BUCKET))
def test_a_clock_stepping_back_never_reopens_a_window(data: st.DataObject, limit: Limit) -> None:
    """Each window the state has moved to admits at most the limit, even when calls arrive
    with times from an earlier window: those count in the newer window, not a fresh one."""
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit, backwards=True))
    strategy = STRATEGIES[limit.algorithm]
    state = strategy.new(limit, start)
    per_window: Counter[int] = Counter()
    for arrival, now in zip(sequence, times(start, sequence), strict=True):
        if strategy.hit(state, limit, now, arrival.hits).allowed:
            per_window[state.start_s] += arrival.hits
    assert all(total <= limit.amount for total in per_window.values())


@FAST
@given(data=st.data())
def test_a_packed_state_is_plain_ints_and_unpacks_to_an_equal_state(data: st.DataObject) -> None:
    limit = data.draw(limits())
    start = data.draw(starts(limit))
    state = STRATEGIES[limit.algorithm].new(limit, start)
    replay(state, limit, start, data.draw(arrivals(limit, reports=True)))
    strategy = STRATEGIES[limit.algorithm]
    packed = strategy.pack(state)
    assert type(packed) is tuple
    assert all(type(field) is int for field in packed)
    assert strategy.unpack(*packed) == state
