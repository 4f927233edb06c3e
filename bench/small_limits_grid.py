"""Bound 5's grid on the virtual-time model: small limits against an exact bucket.

    PYTHONPATH=src python -m bench.small_limits_grid [--seeds 1,2] [--shape poisson]

Fleets of 1 to 50 clients × limits of 1/minute to 10/s × offered 0.5× to 10×, on the CLOUD
network (20 s runs, 120 s for per-minute limits). Prints each case over ±1 of an exact bucket,
over 0.1% false rejections below 1×, or over the run-long envelope, then the count and the
worst gap (docs/bounds.md, bound 5).
"""

from __future__ import annotations

import argparse
import itertools

from ratekeeper.core.limits import parse_limits
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Arrivals, OnOff, Poisson, Steady
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.network import CLOUD

FLEETS = (1, 3, 10, 20, 50)
LIMITS = ("1/minute", "4/minute", "1/s", "5/s", "10/s")
FACTORS = (0.5, 0.9, 1.5, 3.0, 5.0, 10.0)


def rate_of(limit: str) -> float:
    """The rate of ``limit``'s shortest-period limit, per second (the one the grid offers)."""
    return min(parse_limits(limit), key=lambda x: (x.period_ns, x.rate_per_s)).rate_per_s


def arrivals(shape: str, per_client: float) -> Arrivals:
    if shape == "steady":
        return Steady(per_client)
    if shape == "onoff":
        return OnOff(2 * per_client, 1.0, 1.0)
    return Poisson(per_client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="comma-separated model seeds")
    parser.add_argument("--shape", choices=("poisson", "steady", "onoff"), default="poisson")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    worst, bad, cases = 0, 0, 0
    print("| clients | policy | offered | seed | gap | false rejections | run-long excess |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, limit, factor, seed in itertools.product(FLEETS, LIMITS, FACTORS, seeds):
        seconds = 120.0 if "minute" in limit else 20.0
        shape = arrivals(args.shape, rate_of(limit) * factor / n)
        run = simulate(Scenario(n, limit, shape, duration_s=seconds, network=CLOUD, seed=seed))
        gap, false = bounds.exact_gap(run), bounds.false_rejections(run)
        excess = bounds.run_long_excess(run)
        cases += 1
        worst = max(worst, gap)
        if gap > 1 or (factor < 1 and false > 0.001) or excess > 0:
            bad += 1
            print(f"| {n} | {limit} | {factor}× | {seed} | {gap} | {false:.2%} | {excess:.2f} |")
    print(f"\n{cases} cases, {bad} outside a bound, worst gap {worst}")


if __name__ == "__main__":
    main()
