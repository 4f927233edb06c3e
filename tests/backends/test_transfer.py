"""backends.transfer: ages out and back, window boundaries, the stricter of two states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.backends.transfer import aged, restored, stricter
from ratekeeper.core.fixed_window import FixedWindow
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit, window_start
from ratekeeper.core.sliding_window import SlidingWindow
from ratekeeper.core.token_bucket import TokenBucket

S = NS_PER_SECOND
T0 = 1_763_700_000 * S  # minute-aligned
BUCKET = Limit(10, Unit.SECOND)
FIXED = Limit(10, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)
SLIDING = Limit(10, Unit.MINUTE, algorithm=Algorithm.SLIDING_WINDOW)


@given(level=st.integers(-(10**20), 10**20), age=st.integers(-(10**18), 10**18))
def test_a_bucket_keeps_its_level_and_the_age_of_its_update(level: int, age: int) -> None:
    packed = aged(BUCKET, (level, T0 - age), T0)
    assert packed == (level, age)
    assert restored(BUCKET, packed, T0 + 5 * S) == TokenBucket(level, T0 + 5 * S - age)


@given(
    windows_back=st.integers(-3, 1000),
    phase=st.integers(0, 60 * S - 1),
    skew=st.integers(-3600 * S, 3600 * S),
)
def test_a_window_is_as_many_windows_back_on_the_importers_clock(
    windows_back: int, phase: int, skew: int
) -> None:
    # Counts of the exporter's current window stay in the importer's current one whatever the
    # two clocks' phases: a hand-off never rolls a window over early.
    exporter_now = T0 + phase
    start_s = T0 // S - 60 * windows_back
    importer_now = exporter_now + skew
    importer_start = window_start(FIXED, importer_now) - 60 * windows_back
    packed = aged(FIXED, (start_s, 4), exporter_now)
    assert restored(FIXED, packed, importer_now) == FixedWindow(importer_start, 4)
    packed = aged(SLIDING, (start_s, 4, 2), exporter_now)
    assert restored(SLIDING, packed, importer_now) == SlidingWindow(importer_start, 4, 2)


@pytest.mark.parametrize(
    ("limit", "state"),
    [(BUCKET, (1,)), (FIXED, (0, 1, 2)), (SLIDING, (0, 1)), (BUCKET, (1, True)), (FIXED, (0, 1.5))],
)
def test_a_state_of_the_wrong_shape_is_refused(limit: Limit, state: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=f"{limit.algorithm.value} state is"):
        restored(limit, state, T0)


def test_the_lower_bucket_wins_once_both_are_refilled_to_now() -> None:
    top = BUCKET.capacity * BUCKET.period_ns
    # Old but low against recent but higher: refilled to now, the recent one is lower.
    old = TokenBucket(-top, T0 - 2 * S)  # refills 2 s x 10/s = 20 tokens: full by now
    recent = TokenBucket(top // 2, T0)
    assert stricter(BUCKET, old, recent, T0) is recent
    assert stricter(BUCKET, TokenBucket(-top, T0), TokenBucket(0, T0), T0).level == -top


def test_a_bucket_from_a_clock_ahead_is_compared_at_that_clock() -> None:
    ahead = TokenBucket(0, T0 + S)
    here = TokenBucket(0, T0)
    merged = stricter(BUCKET, here, ahead, T0)
    assert merged.updated_at == T0 + S  # it refills nothing until then
    assert merged.level == 0


def test_windows_in_one_window_keep_every_count() -> None:
    start_s = T0 // S
    assert stricter(FIXED, FixedWindow(start_s, 3), FixedWindow(start_s, 5), T0) == FixedWindow(
        start_s, 5
    )
    merged = stricter(SLIDING, SlidingWindow(start_s, 3, 9), SlidingWindow(start_s, 5, 1), T0)
    assert merged == SlidingWindow(start_s, 5, 9)


def test_an_old_window_rolls_and_the_newer_counts_win() -> None:
    start_s = T0 // S
    stale = FixedWindow(start_s - 60, 10)  # rolls to an empty window at T0
    assert stricter(FIXED, stale, FixedWindow(start_s, 2), T0) == FixedWindow(start_s, 2)
    future = FixedWindow(start_s + 60, 1)  # a clock ahead: the algorithm keeps newer counts
    assert stricter(FIXED, FixedWindow(start_s, 9), future, T0) is future


def test_states_of_two_algorithms_do_not_merge() -> None:
    with pytest.raises(TypeError):
        stricter(BUCKET, TokenBucket(0, T0), FixedWindow(0, 0), T0)
