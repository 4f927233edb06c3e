"""Both sides of ``LimiterOptions(dealt_onset=...)`` on the virtual-time model: cold-onset
overshoot, and false rejections of keys within their policy, knob off and on.

    PYTHONPATH=src:. python bench/onset_dealt.py [--seeds N]

Onset: each client's traffic steps from 0 to 100x the policy's rate over the fleet at t = 2 s
(CLOUD network, 100 ms reports); the value is what the fleet admitted in the first second after
the step over ``r + b`` (target: at most 1.10), worst over the seeds. False rejections: Poisson
traffic at 0.9x the policy spread over the fleet (over ``keys`` keys), the hits an exact bucket
would have admitted that the fleet rejected, per hit offered (target: at most 0.1%), worst key,
worst over the seeds.
"""

from __future__ import annotations

import argparse
import time

from ratekeeper.client.policy import local_limit
from ratekeeper.core.limits import parse_limits
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Poisson, Step
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.network import CLOUD

ONSET_FLEETS = (10, 40, 60, 200)
ONSET_LIMITS = ("10/s", "50/s", "100/s burst 200", "1000/s")
#: (clients, limit, keys, seconds): within the policy, each client's share sparse or not.
WITHIN = (
    (10, "5/s", 1, 20.0),
    (40, "5/s", 1, 20.0),
    (40, "5/s", 1, 120.0),
    (200, "5/s", 1, 120.0),
    (40, "5/s", 20, 20.0),
    (40, "100/s", 1, 20.0),
    (200, "50/s", 1, 20.0),
    (40, "1000/s burst 2000", 1, 20.0),
)


def _rate(limit: str) -> float:
    local = local_limit(parse_limits(limit))
    assert local is not None
    return local.rate_per_s


def onset(n: int, limit: str, seed: int, dealt: bool) -> float:
    """First second after a 0 -> 100x step, over ``r + b``."""
    rate = _rate(limit)
    sc = Scenario(n, limit, Step(0.0, rate * 100 / n, 2.0), 3.5, network=CLOUD, seed=seed,
                  dealt_onset=dealt)  # fmt: skip
    return 1.0 + bounds.onset_excess(simulate(sc), 2.0)


def within(n: int, limit: str, keys: int, seconds: float, seed: int, dealt: bool) -> float:
    """False rejections (beyond an exact bucket's) per hit offered, worst key."""
    per = _rate(limit) * 0.9 * keys / n
    sc = Scenario(n, limit, Poisson(per), seconds, network=CLOUD, keys=keys, seed=seed,
                  dealt_onset=dealt)  # fmt: skip
    return bounds.false_rejections(simulate(sc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case (worst reported)")
    args = parser.parse_args()
    seeds = range(args.seeds)
    start = time.perf_counter()
    print("Cold onset: first second after 0 -> 100x, admitted / (r + b) (target <= 1.10)\n")
    print("| clients | policy | dealt_onset=False | dealt_onset=True |")
    print("|---|---|---|---|")
    for n in ONSET_FLEETS:
        for limit in ONSET_LIMITS:
            off = max(onset(n, limit, s, False) for s in seeds)
            on = max(onset(n, limit, s, True) for s in seeds)
            print(f"| {n} | {limit} | {off:.2f} | {on:.2f} |", flush=True)
    print(
        "\nFalse rejections within the policy (0.9x, Poisson), per hit offered (target <= 0.1%)\n"
    )
    print("| clients | policy | keys | seconds | dealt_onset=False | dealt_onset=True |")
    print("|---|---|---|---|---|---|")
    for n, limit, keys, seconds in WITHIN:
        off = max(within(n, limit, keys, seconds, s, False) for s in seeds)
        on = max(within(n, limit, keys, seconds, s, True) for s in seeds)
        print(f"| {n} | {limit} | {keys} | {seconds:.0f} | {off:.2%} | {on:.2%} |", flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
