"""Bound 8 (docs/bounds.md): a restarted lone server hands out no fresh burst.

The model restarts its server (``Scenario.restart``): reports reaching it while down are refused,
then a new one serves with empty memory. Its clients number their reports to it past 1, so it
finds it was restarted (``ratekeeper.core.restart_watch``) and its new counters start empty.
With the outage shorter than the clients' backlog horizon (1 s of failed reports, the resent
backlog charged, not forgiven), the fleet admits from the restart on at most the refill since
plus one hit: no burst ``b`` per restart (before: up to 0.5 b more, and 2 hits at ``1/s``).
"""

from __future__ import annotations

import logging

import pytest

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Poisson
from ratekeeper.testing.model.fleet import Restart, Run, Scenario, simulate
from ratekeeper.testing.model.measure import exact_bucket
from ratekeeper.testing.model.network import CLOUD

AT_S = 6.0

#: (clients, policy, rate per s, offered x policy, report interval s, outage s)
FLEETS = [
    (10, "50/s", 50.0, 2.0, 0.1, 0.5),  # the simulator's server-restart shape
    (10, "50/s", 50.0, 2.0, 0.1, 0.8),
    (40, "5/s", 5.0, 3.0, 0.1, 0.5),
    (1, "10/s", 10.0, 3.0, 0.1, 0.5),
    (10, "100/s burst 200", 100.0, 2.0, 0.25, 0.5),
    (10, "1/s", 1.0, 5.0, 0.05, 0.6),
    (50, "1000/s", 1000.0, 2.0, 0.1, 0.4),
]


def _run(n: int, limit: str, rate: float, factor: float, interval: float, down: float) -> Run:
    sc = Scenario(
        n,
        limit,
        Poisson(rate * factor / n),
        duration_s=12.0,
        report_interval_s=interval,
        network=CLOUD,
        seed=1,
        restart=Restart(AT_S, down),
    )
    logging.disable(logging.WARNING)  # every client warns that its server fails: expected
    try:
        return simulate(sc)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("fleet", FLEETS, ids=lambda f: f"{f[0]}c-{f[1]}-{f[5]}s")
def test_a_restarted_server_hands_out_no_fresh_burst(
    fleet: tuple[int, str, float, float, float, float],
) -> None:
    run = _run(*fleet)
    rate = bounds.local_limit_of(run).rate_per_s
    times, admitted = run.times["k0"], run.admitted["k0"]
    start = AT_S * NS_PER_SECOND
    after = sum(1 for t, ok in zip(times, admitted, strict=True) if ok and t >= start)
    assert after <= rate * (run.scenario.duration_s - AT_S) + 1
    # and across the whole run the restart costs nothing beyond the run-long bound
    assert bounds.run_long_excess(run) <= 0.0


def test_reports_fail_while_the_server_is_down_and_are_answered_after() -> None:
    run = _run(*FLEETS[0])
    assert sum(run.failed) >= 10 * 4  # every client, about every cycle of the outage
    assert sum(run.answered) > sum(run.failed)
    assert sum(run.admitted["k0"]) <= exact_bucket(run.times["k0"], bounds.local_limit_of(run))
