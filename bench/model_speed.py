"""How fast the virtual-time model runs: client-seconds of simulated traffic per wall second.

    PYTHONPATH=src:. python bench/model_speed.py

One line per fleet shape: clients, hits per client per second, events, wall time, and speed
per wall second and per CPU second (the machine is shared: CPU time is what the model costs).
"""

from __future__ import annotations

import time

from ratekeeper.testing.model.arrivals import Poisson
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.network import CLOUD

SHAPES = (
    # clients, policy, hits per client per second, report interval
    (10, "50/s", 10.0, 0.1),
    (40, "1/s", 0.125, 0.1),
    (40, "100/s", 2.25, 0.1),
    (200, "1000/s", 25.0, 0.1),
    (200, "5/s", 0.125, 0.05),
    (50, "1000/s", 100.0, 1.0),
)


def main() -> None:
    print(
        "| clients | policy | hits/client/s | interval | events | wall s | client-s/wall s "
        "| client-s/CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, limit, per, interval in SHAPES:
        sc = Scenario(
            n, limit, Poisson(per), duration_s=20.0, report_interval_s=interval, network=CLOUD
        )
        start, cpu = time.perf_counter(), time.process_time()
        run = simulate(sc)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        print(
            f"| {n} | {limit} | {per:g} | {interval:g} | {run.events} | {wall:.2f} "
            f"| {run.client_seconds / wall:,.0f} | {run.client_seconds / cpu:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
