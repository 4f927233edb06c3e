"""Named fleets for each bound: the shapes of issue 11 and a grid around them.

``bench/model_accuracy.py`` runs every case of every bound and prints the worst measured slack;
the property tests draw further fleets at random. A case is a scenario plus, for cold onset, the
instant of the step, and for report traffic, the scenario at the base rate.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ratekeeper.core.limits import parse_limits
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Arrivals, OnOff, Poisson, Steady, Step
from ratekeeper.testing.model.fleet import Run, Scenario, simulate
from ratekeeper.testing.model.network import CLOUD

__all__ = ["BOUNDS", "Bound", "measure_bound"]


def _rate(limit: str) -> float:
    lim = min(parse_limits(limit), key=lambda x: (x.period_ns, x.rate_per_s))
    return lim.rate_per_s


def _fleet(n: int, limit: str, factor: float, shape: str, seed: int, **kw: object) -> Scenario:
    per = _rate(limit) * factor / n
    arrivals: Arrivals
    if shape == "steady":
        arrivals = Steady(per)
    elif shape == "onoff":
        arrivals = OnOff(2 * per, 1.0, 1.0)
    else:
        arrivals = Poisson(per)
    return dataclasses.replace(Scenario(n, limit, arrivals, duration_s=20.0, seed=seed), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Bound:
    """A bound: its name, target, and how to measure one case of it."""

    name: str
    #: What the measured value must not exceed.
    target: float
    unit: str
    cases: Callable[[], Iterator[tuple[str, Callable[[], float]]]]


def _run_long_cases(overshoot: bool) -> Callable[[], Iterator[tuple[str, Callable[[], float]]]]:
    def cases() -> Iterator[tuple[str, Callable[[], float]]]:
        measure = bounds.run_long_overshoot if overshoot else bounds.run_long_excess
        for n in (1, 10, 40, 200):
            for limit in ("1/s", "5/s", "50/s", "100/s burst 200", "1000/s"):
                for factor in (2.0, 5.0):
                    for shape in ("steady", "poisson"):
                        sc = _fleet(n, limit, factor, shape, 1, duration_s=20.0, network=CLOUD)
                        yield f"{n}c {limit} {factor}x {shape}", _bind(measure, sc)

    return cases


@functools.lru_cache(maxsize=256)
def _simulated(sc: Scenario) -> Run:
    """Runs shared by the bounds measured on the same fleets (run-long excess and overshoot)."""
    return simulate(sc)


def _bind(measure: Callable[[Run], float], sc: Scenario) -> Callable[[], float]:
    return lambda: float(measure(_simulated(sc)))


def _false_rejection_cases() -> Iterator[tuple[str, Callable[[], float]]]:
    for n in (1, 10, 40, 200):
        for limit in ("5/s", "50/s", "100/s", "1000/s burst 2000"):
            for factor in (0.5, 0.9):
                for shape in ("poisson", "steady"):
                    sc = _fleet(n, limit, factor, shape, 2, duration_s=20.0, network=CLOUD)
                    yield f"{n}c {limit} {factor}x {shape}", _bind(bounds.false_rejections, sc)


def _small_limit_cases() -> Iterator[tuple[str, Callable[[], float]]]:
    for n in (1, 10, 50):
        for limit in ("1/minute", "4/minute", "1/s", "5/s", "10/s"):
            for factor in (0.5, 3.0):
                dur = 120.0 if "minute" in limit else 20.0
                sc = _fleet(n, limit, factor, "poisson", 3, duration_s=dur, network=CLOUD)
                yield f"{n}c {limit} {factor}x", _bind(lambda r: float(bounds.exact_gap(r)), sc)


def _onset_cases() -> Iterator[tuple[str, Callable[[], float]]]:
    for n in (1, 10, 40, 200):
        for limit in ("10/s", "50/s", "100/s burst 200"):
            per = _rate(limit) * 100 / n
            sc = Scenario(n, limit, Step(0.0, per, 2.0), duration_s=4.0, network=CLOUD, seed=4)
            yield f"{n}c {limit} 0->100x", _bind(lambda r: bounds.onset_excess(r, 2.0), sc)


def _report_cases() -> Iterator[tuple[str, Callable[[], float]]]:
    for n in (1, 10, 40):
        for limit in ("5/s", "100/s"):
            for interval in (0.05, 0.1, 1.0):
                low = _fleet(n, limit, 0.5, "poisson", 5, report_interval_s=interval)
                high = dataclasses.replace(low, arrivals=Poisson(_rate(limit) * 5.0 / n))

                def one(lo: Scenario = low, hi: Scenario = high) -> float:
                    return bounds.report_ratio(simulate(lo), simulate(hi))

                yield f"{n}c {limit} I={interval}s", one


BOUNDS = (
    Bound("run-long admitted <= r*T + b + E", 0.0, "hits", _run_long_cases(False)),
    Bound("run-long overshoot <= 1% of r*T", 0.01, "of r*T", _run_long_cases(True)),
    Bound("false rejections <= 0.1%", 0.001, "of offered", _false_rejection_cases),
    Bound("small limits within +-1 of exact", 1.0, "hits", _small_limit_cases),
    Bound("cold onset first second <= (r+b)+10%", 0.10, "over r+b", _onset_cases),
    Bound("report RPCs per cycle at 10x <= 1.1x", 1.10, "ratio", _report_cases),
)


def measure_bound(bound: Bound) -> tuple[int, float, str]:
    """Run every case of ``bound``: how many, the worst value, and the worst case's name."""
    worst, where, count = float("-inf"), "", 0
    for name, run in bound.cases():
        value = run()
        count += 1
        if value > worst:
            worst, where = value, name
    return count, worst, where
