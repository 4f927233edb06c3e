"""The per-key bounds of docs/bounds.md, asserted over random fleets on the virtual-time model.

Each bound is asserted as stated, never loosened to today's numbers. A bound that today's
protocol breaks is marked ``xfail(strict=True)`` with what the model measured on the explicit
example (issue 11), so the test flips to a failure-to-fail the day a fix makes it hold.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Poisson, Steady, Step
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.measure import window_max
from ratekeeper.testing.model.network import CLOUD, Network, Partition
from tests.model.conftest import PROPERTIES
from tests.model.strategies import fleets, rate_of, with_rate

OVERLOAD = st.floats(1.5, 5.0)
WITHIN = st.floats(0.1, 0.9)

#: The issue's shapes, as explicit examples (run first, every time).
SPARSE_OVERLOAD = Scenario(40, "1/s", Poisson(5.0 / 40), duration_s=20.0, network=CLOUD, seed=1)
DENSE_OVERLOAD = Scenario(200, "5/s", Steady(25.0 / 200), duration_s=20.0, network=CLOUD, seed=1)
SPARSE_WITHIN = Scenario(40, "100/s", Poisson(90.0 / 40), duration_s=20.0, network=CLOUD, seed=2)
SMALL = Scenario(1, "5/s", Steady(20.0), duration_s=10.0, seed=1)
SMALL_FLEET = Scenario(10, "1/s", Poisson(5.0 / 10), duration_s=20.0, network=CLOUD, seed=3)
ONSET = Scenario(40, "50/s", Step(0.0, 5000.0 / 40, 2.0), duration_s=4.0, network=CLOUD, seed=4)
#: The bench grid's worst run-long case with A + B + E (bench/model_accuracy.py).
SPARSE_RUN_LONG = Scenario(40, "1/s", Poisson(2.0 / 40), duration_s=20.0, network=CLOUD, seed=1)
STEADY_REPORTS = Scenario(10, "100/s", Poisson(50.0 / 10), duration_s=10.0, seed=5)


def test_a_lone_client_never_exceeds_the_envelope() -> None:
    """Holds today: one client's local limiter is the policy's bucket exactly."""
    for limit in ("1/s", "5/s", "100/s burst 200", "4/minute"):
        run = simulate(Scenario(1, limit, Poisson(3 * rate_of(limit)), duration_s=60.0, seed=9))
        assert bounds.run_long_overshoot(run) <= 0.0


@given(fleets(factor=OVERLOAD, max_clients=1))
@PROPERTIES
def test_one_client_stays_within_r_t_plus_b(sc: Scenario) -> None:
    assert bounds.run_long_overshoot(simulate(sc)) <= 0.0


@given(fleets(factor=OVERLOAD))
@example(DENSE_OVERLOAD)
@example(SPARSE_OVERLOAD)
@example(SPARSE_RUN_LONG)
@PROPERTIES
def test_run_long_admitted_within_r_t_plus_b_plus_e(sc: Scenario) -> None:
    assert bounds.run_long_excess(simulate(sc)) <= 0.0


@given(fleets(factor=OVERLOAD, shapes=st.sampled_from(["steady"])))
@example(dataclasses.replace(DENSE_OVERLOAD, limit="1/s", arrivals=Steady(5.0 / 200)))
@PROPERTIES
def test_run_long_overshoot_at_most_one_percent_on_steady_shapes(sc: Scenario) -> None:
    assert bounds.run_long_overshoot(simulate(sc)) <= 0.01


@given(fleets(factor=WITHIN, shapes=st.sampled_from(["steady", "poisson"])))
@example(SPARSE_WITHIN)
@PROPERTIES
def test_no_false_rejections_within_the_policy(sc: Scenario) -> None:
    assert bounds.false_rejections(simulate(sc)) <= 0.001


SMALL_LIMITS = st.sampled_from(["1/minute", "4/minute", "1/s", "5/s", "10/s"])


@pytest.mark.xfail(
    strict=True,
    reason=(
        "issue 11: measured 4 hits from exact (10 clients, 1/s, 5x; 8 before A+B+E): each hit"
        " after the first in an information round borrows a token, ~lambda*R per rejection"
        " period (docs/bounds.md bound 5; the real processes measure +3 on small-1ps). Tried"
        " 2026-12-04: an exact-bucket shadow at the server brings this shape to 0..+1 but not"
        " the first round of a cold or on/off fleet, and breaks bound 3; dealing every new key"
        " (dealt_onset=True) gives -131..+1 and 10-66% false rejections; dealing only while a"
        " small key is over its limit (small11) leaves 23-36 of 150 grid cases over +-1, worst"
        " 7-8 (docs/bounds.md)"
    ),
)
@given(fleets(factor=st.floats(0.5, 5.0), policies=SMALL_LIMITS, max_clients=50))
@example(SMALL)
@example(SMALL_FLEET)
@PROPERTIES
def test_small_limits_within_one_hit_of_an_exact_bucket(sc: Scenario) -> None:
    assert bounds.exact_gap(simulate(sc)) <= 1


ONSET_FLEETS = (
    st.integers(1, 60),
    st.sampled_from(["10/s", "50/s", "100/s burst 200", "1000/s"]),
    st.integers(0, 1000),
)


def _onset_excess(n: int, limit: str, seed: int, dealt_onset: bool) -> float:
    per = rate_of(limit) * 100 / n
    sc = Scenario(
        n, limit, Step(0.0, per, 2.0), 3.5, network=CLOUD, seed=seed, dealt_onset=dealt_onset
    )
    return bounds.onset_excess(simulate(sc), 2.0)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "issue 11: by default (dealt_onset=False) measured 4.28x (r + b) in the first second"
        " (40 clients, 50/s, 0->100x): every client holds a whole local bucket before its first"
        " answer; the knob that meets the bound costs sparse keys' first hits (docs/bounds.md"
        " bound 6, bench/onset_dealt.py)"
    ),
)
@given(*ONSET_FLEETS)
@example(40, "50/s", 4)
@PROPERTIES
def test_cold_onset_first_second_within_r_plus_b_plus_ten_percent(
    n: int, limit: str, seed: int
) -> None:
    assert _onset_excess(n, limit, seed, dealt_onset=False) <= 0.10


@given(*ONSET_FLEETS)
@example(40, "50/s", 4)
@example(60, "10/s", 0)
@example(60, "100/s burst 200", 4)
@PROPERTIES
def test_cold_onset_within_r_plus_b_plus_ten_percent_when_dealt(
    n: int, limit: str, seed: int
) -> None:
    """With ``LimiterOptions(dealt_onset=True)`` the fleet holds one bucket in its first round."""
    assert _onset_excess(n, limit, seed, dealt_onset=True) <= 0.10


@given(fleets(factor=st.floats(0.05, 0.5), shapes=st.sampled_from(["poisson", "steady"])))
@example(STEADY_REPORTS)
@PROPERTIES
def test_report_rpcs_per_cycle_flat_when_traffic_steps_tenfold(sc: Scenario) -> None:
    factor = sc.arrivals_of(0).mean_rate(1.0) * sc.clients / rate_of(sc.limit)
    high = with_rate(sc, 10 * factor)
    assert bounds.report_ratio(simulate(sc), simulate(high)) <= 1.1


def _multi_limit_run(partitioned: bool) -> tuple[int, int]:
    """Most admitted in any minute, and admitted in the first 8 s, for ``2/s; 4/minute``."""
    net = Network(partitions=(Partition(0, 0, 10**12),)) if partitioned else Network()
    sc = Scenario(1, "2/s; 4/minute", Steady(1 / 0.3), duration_s=60.0, network=net, seed=1)
    run = simulate(sc)
    times, admitted = run.times["k0"], run.admitted["k0"]
    early = sum(ok for t, ok in zip(times, admitted, strict=True) if t < 8 * NS_PER_SECOND)
    return window_max(times, admitted, 60 * NS_PER_SECOND), early


@pytest.mark.parametrize("partitioned", [False, True], ids=["server-up", "server-down"])
def test_every_limit_of_a_multi_limit_policy_holds(partitioned: bool) -> None:
    """A token bucket of ``4/minute`` admits at most ``b + r·W`` in any window ``W``: strictly
    under 8 in a minute, and 4 in the first 8 s (the issue's case admitted 16 there)."""
    minute, early = _multi_limit_run(partitioned)
    assert minute <= 7
    assert early <= 4


def test_a_lone_client_gets_its_whole_allowance_at_a_small_limit() -> None:
    run = simulate(Scenario(1, "4/minute", Steady(1 / 0.3), duration_s=10.0, seed=1))
    assert run.admitted["k0"][:4] == [True] * 4
