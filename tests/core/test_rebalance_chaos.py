"""The rebalancer under many rounds of membership churn and Zipf drift (a fast ``bench.chaos``)."""

from __future__ import annotations

import pytest

from bench.chaos import ChaosResult, ChaosSpec, quantile, run_chaos, table
from ratekeeper.core.rebalance import RebalanceSettings

SPEC = ChaosSpec(rounds=120, warmup=10, servers=16, keys=20_000)


@pytest.fixture(scope="module")
def run() -> ChaosResult:
    return run_chaos(SPEC)


def test_imbalance_stays_near_the_tolerance(run: ChaosResult) -> None:
    tolerance = SPEC.settings.tolerance
    assert max(run.bound) == 1.0  # every round could be balanced perfectly
    # scored on true key loads, which the rebalancer only saw per slice, so allow some slack
    assert quantile(run.imbalance, 0.5) <= 1 + tolerance
    assert quantile(run.imbalance, 0.99) <= 1 + tolerance + 0.01
    assert max(run.imbalance) <= 1.10


def test_churn_per_round_is_bounded(run: ChaosResult) -> None:
    # a round may lose a server and gain one: two sixteenths of the load must move then
    membership = 2 / SPEC.servers
    assert quantile(run.churn, 0.5) <= 0.02
    assert quantile(run.churn, 0.99) <= membership + SPEC.settings.max_moved_fraction
    assert max(run.chosen) <= SPEC.settings.max_moved_fraction + 0.01


def test_the_slice_count_tracks_the_load_not_the_history(run: ChaosResult) -> None:
    # split at a twentieth of the mean, merged under a fiftieth: tens of slices per server
    assert quantile(run.slices, 0.99) <= 80 * SPEC.servers
    late = run.slices[len(run.slices) // 2 :]
    assert max(late) <= 1.5 * min(late)


def test_a_hot_key_bounds_the_imbalance_and_is_reached() -> None:
    spec = ChaosSpec(rounds=20, warmup=5, servers=16, keys=5_000, zipf=1.2)
    result = run_chaos(spec)
    assert min(result.bound) > 1.5  # the hottest key alone outweighs the mean server
    assert all(i <= b * 1.06 for i, b in zip(result.imbalance, result.bound, strict=True))


def test_the_same_spec_gives_the_same_figures() -> None:
    spec = ChaosSpec(
        rounds=5, warmup=2, servers=4, keys=500, settings=RebalanceSettings(tolerance=0.1)
    )
    first, second = run_chaos(spec), run_chaos(spec)
    assert (first.imbalance, first.churn, first.slices) == (
        second.imbalance,
        second.churn,
        second.slices,
    )
    assert table(spec, first).count("\n") == 2
