"""RestartWatch: a lone server marks its new counters cold once it finds it was restarted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.restart_watch import ColdMark, RestartWatch

S = 1_000_000_000


def test_a_first_start_is_never_marked() -> None:
    watch = RestartWatch(2 * S)
    assert [watch.observe(False, t) for t in (10, S, 2 * S, 3 * S)] == [None] * 4
    assert watch.done


def test_a_client_numbered_elsewhere_marks_cold_from_the_first_report_then_lifts() -> None:
    watch = RestartWatch(2 * S)
    assert watch.observe(False, 5 * S) is None  # the first report starts the watch
    assert watch.observe(True, 5 * S + 100) == ColdMark(5 * S)
    assert watch.observe(True, 6 * S) is None  # marked once
    assert not watch.done
    assert watch.observe(False, 7 * S) == ColdMark(None)  # the window is over: lifted
    assert watch.done
    assert watch.observe(True, 8 * S) is None


def test_a_restart_found_after_the_window_is_ignored() -> None:
    watch = RestartWatch(2 * S)
    watch.observe(False, 0)
    assert watch.observe(True, 2 * S) is None
    assert watch.done


def test_a_zero_window_never_watches() -> None:
    watch = RestartWatch(0)
    assert watch.done
    assert watch.observe(True, 0) is None


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10 * S)), max_size=30))
def test_at_most_one_mark_and_one_lift_in_that_order(reports: list[tuple[bool, int]]) -> None:
    watch = RestartWatch(2 * S)
    changes = [
        c for flag, t in sorted(reports, key=lambda r: r[1]) if (c := watch.observe(flag, t))
    ]
    assert len(changes) <= 2
    if changes:
        assert changes[0].since is not None
    if len(changes) == 2:
        assert changes[1] == ColdMark(None)
