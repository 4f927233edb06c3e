"""How fast the virtual-time model runs: client-seconds of simulated traffic per wall second.

    PYTHONPATH=src:. python -m bench.model_speed              # six fleet shapes, ~1 min
    PYTHONPATH=src:. python -m bench.model_speed --callgrind  # instructions; needs valgrind, ~2 min

One line per fleet shape: clients, hits per client per second, events, wall time, and speed
per wall second and per CPU second (the machine is shared: CPU time is what the model costs).
``--callgrind`` counts the instructions of one run of the speed test's fleet
(``tests/model/test_fleet.py``: 40 clients, ``100/s``, 10 s) under valgrind: a child that
imports, warms up and runs it, less one that stops after the warm-up, so start-up cancels out.
The machine is noisy; the instruction count is the figure to compare between two checkouts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from bench.callgrind import instructions
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

#: The speed test's fleet (tests/model/test_fleet.py), the one ``--callgrind`` counts.
SPEED_TEST = Scenario(40, "100/s", Poisson(5.0), duration_s=10.0, network=CLOUD, seed=1)


def speeds() -> None:
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


def child(run: bool) -> None:
    """Warm up (first-call caches), then play the speed test's fleet if ``run``."""
    logging.disable(logging.WARNING)  # a lost report's fail-open warning is not the model's cost
    simulate(Scenario(1, "100/s", Poisson(5.0), duration_s=0.5, network=CLOUD, seed=1))
    if run:
        simulate(SPEED_TEST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_speed")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    parser.add_argument("--child", choices=("run", "warm"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child == "run")
    elif args.callgrind:
        full = instructions("bench.model_speed", ["--child", "run"], timeout=900)
        warm = instructions("bench.model_speed", ["--child", "warm"], timeout=900)
        print(f"instructions per model run (40 clients x 10 s): {(full - warm) / 1e6:,.0f}M")
    else:
        speeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
