"""Cold ranges: marks replace what they cover, lift with ``None``, stay bounded; an emptied
state is a fresh one with its whole capacity spent at the mark's instant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.cold import ColdRanges, emptied
from ratekeeper.core.algorithms import STRATEGIES
from ratekeeper.core.limits import Algorithm, Limit, Unit

marks = st.lists(
    st.tuples(st.integers(0, 64), st.integers(0, 64), st.none() | st.integers(0, 9)), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(marks)
def test_the_last_mark_covering_a_hash_wins(history: list[tuple[int, int, int | None]]) -> None:
    cold = ColdRanges()
    expected: dict[int, int | None] = {}
    for low, high, since in history:
        low, high = min(low, high), max(low, high)
        cold.mark(low, high, since)
        expected.update(dict.fromkeys(range(low, high), since))
    assert [cold.since(h) for h in range(66)] == [expected.get(h) for h in range(66)]
    assert bool(cold) == any(v is not None for v in expected.values())


def test_marks_are_bounded_and_the_oldest_goes_first() -> None:
    cold = ColdRanges(max_ranges=3)
    for i, since in enumerate([5, 1, 7, 3]):
        cold.mark(10 * i, 10 * i + 5, since)
    assert len(cold) == 3
    assert cold.since(10) is None  # the mark of instant 1 was dropped
    assert [cold.since(h) for h in (0, 20, 30)] == [5, 7, 3]


def test_an_emptied_state_has_nothing_left_at_its_instant_and_refills_after() -> None:
    for algorithm in Algorithm:
        limit = Limit(6, Unit.SECOND, burst=None, algorithm=algorithm)
        strategy = STRATEGIES[algorithm]
        assert strategy.hit(emptied(limit, 10**18), limit, 10**18, 0).remaining == 0
        later = 10**18 + 3 * limit.period_ns
        assert strategy.hit(emptied(limit, 10**18), limit, later, 0).remaining == 6
