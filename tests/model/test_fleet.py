"""The event loop: deterministic, driving the real client and server, fast enough to sweep."""

from __future__ import annotations

import dataclasses
import gc
import time

from ratekeeper.core.limits import parse_limit
from ratekeeper.testing.model.arrivals import Poisson, Steady
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.measure import exact_bucket
from ratekeeper.testing.model.network import CLOUD, Delay, Network, Partition

FLEET = Scenario(10, "20/s", Poisson(4.0), duration_s=5.0, network=CLOUD, seed=3)


def test_the_same_scenario_gives_the_same_trace() -> None:
    a, b = simulate(FLEET), simulate(FLEET)
    assert a.digest() == b.digest()
    assert a.admitted == b.admitted
    assert a.sent == b.sent
    assert simulate(dataclasses.replace(FLEET, seed=4)).digest() != a.digest()


def test_a_lone_client_is_held_to_its_policy_by_the_real_local_limiter() -> None:
    run = simulate(Scenario(1, "5/s", Steady(20.0), duration_s=10.0, seed=1))
    times = run.times["k0"]
    # never more than the policy's bucket: the local limiter is the policy pace exactly
    # (how far below it the server's answers hold a lone client is the small-limits bound)
    assert sum(run.admitted["k0"]) <= exact_bucket(times, parse_limit("5/s"))
    assert sum(run.admitted["k0"]) > 0.9 * exact_bucket(times, parse_limit("5/s"))
    assert run.answered[0] == run.sent[0] > 0


def test_reports_reach_the_real_server_and_lost_ones_fail_at_the_deadline() -> None:
    lossy = Network(Delay(1_000_000), Delay(1_000_000), loss_up=0.3)
    run = simulate(dataclasses.replace(FLEET, network=lossy))
    assert sum(run.failed) > 0
    assert sum(run.answered) > 0
    assert sum(run.failed) + sum(run.answered) <= sum(run.sent)


def test_a_partitioned_client_fails_open_and_its_reports_fail() -> None:
    cut = Network(partitions=(Partition(0, 0, 10**10),))
    run = simulate(dataclasses.replace(FLEET, network=cut))
    # the last report's deadline may fall after the end of the run
    assert run.answered[0] == 0
    assert run.sent[0] - 1 <= run.failed[0] <= run.sent[0]
    assert run.sent[0] > 0


def test_speed_is_at_least_a_thousand_client_seconds_per_second() -> None:
    """CPU time, not wall time: seven engineers share two cores (bench/model_speed.py: wall)."""
    sc = Scenario(40, "100/s", Poisson(5.0), duration_s=10.0, network=CLOUD, seed=1)
    # The model's own cost, not the test session's heap: late in a full run, every collection
    # the model triggers would also walk the objects of the ~2,000 tests before it.
    gc.collect()
    gc.freeze()
    try:
        start = time.process_time()
        run = simulate(sc)
        elapsed = time.process_time() - start
    finally:
        gc.unfreeze()
    assert run.client_seconds / elapsed >= 1_000
