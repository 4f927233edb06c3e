"""The exact bucket the protocol is judged against, and the sliding-window count."""

from __future__ import annotations

from ratekeeper.core.limits import NS_PER_SECOND, parse_limit
from ratekeeper.testing.model.measure import envelope, exact_bucket, window_max

S = NS_PER_SECOND


def test_a_full_bucket_admits_its_burst_then_its_rate() -> None:
    limit = parse_limit("2/s burst 5")
    burst = [0] * 10
    assert exact_bucket(burst, limit) == 5
    steady = [i * S // 10 for i in range(100)]  # 10/s for 10 s
    assert exact_bucket(steady, limit) in (5 + 19, 5 + 20)
    assert envelope(limit, 10.0) == 25.0


def test_under_the_rate_everything_is_admitted() -> None:
    limit = parse_limit("10/s")
    assert exact_bucket([i * S // 5 for i in range(50)], limit) == 50


def test_window_max_counts_admissions_only() -> None:
    times = [0, 1, 2, S, S + 1]
    assert window_max(times, [True, True, False, True, True], S) == 2
    assert window_max(times, [True] * 5, 2 * S) == 5
