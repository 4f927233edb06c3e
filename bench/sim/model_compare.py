"""The virtual-time model on the simulator's own shapes, beside the real processes' figures.

    PYTHONPATH=src:. python -m bench.sim.model_compare RESULTS.json [...] [--seeds 5]

For each architecture-C row of the given ``results.json`` files (written by ``python -m
bench``) whose shape the model can play (one key or uniform keys; steady or step rates; no
restart), the model plays the same fleet, policy, rate and duration over its ``CLOUD`` network
for several seeds, and the figures are computed by the simulator's own functions
(:mod:`bench.sim.metrics`). Printed as a markdown table: the real figure, the model's mean and
range over the seeds, and whether the real one falls within the stated tolerance of the model's
range (:data:`TOLERANCE`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.sim import metrics
from bench.sim.spec import Run, load_profile
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Arrivals, Poisson, Step
from ratekeeper.testing.model.fleet import Run as ModelRun
from ratekeeper.testing.model.fleet import Scenario, simulate
from ratekeeper.testing.model.network import CLOUD

__all__ = ["TOLERANCE", "Compared", "compare", "main"]

#: How far a real figure may fall outside the model's range over its seeds and still agree, in
#: the figure's own unit: hits (and at least 2% of ``r·T`` for Δ vs exact), fractions of the
#: allowance, multiples of ``r``, the report ratio.
TOLERANCE = {"Δ vs exact": 2.0, "run-long over rT+b": 0.02, "peak 1-s / r": 0.5, "reports": 0.1}
#: Δ vs exact's tolerance grows with the run: at least this fraction of ``r·T``.
DELTA_FRACTION = 0.02


@dataclass(frozen=True, slots=True)
class Compared:
    """One figure of one shape: the real processes' value and the model's over its seeds."""

    run: str
    figure: str
    real: float
    model: tuple[float, ...]
    #: ``r·T`` of the run, in hits.
    rt: float

    @property
    def slack(self) -> float:
        slack = TOLERANCE[self.figure]
        return max(slack, DELTA_FRACTION * self.rt) if self.figure == "Δ vs exact" else slack

    @property
    def agrees(self) -> bool:
        return min(self.model) - self.slack <= self.real <= max(self.model) + self.slack


def _scenario(run: Run, seed: int) -> Scenario | None:
    shape = run.shape
    if shape.restart_at_s is not None or shape.keys.popularity != "uniform":
        return None
    rate = shape.rate
    per = shape.limit.rate_per_s / shape.clients
    arrivals: Arrivals
    if rate.kind == "steady":
        arrivals = Poisson(per * rate.multiple)
    elif rate.kind == "step":
        arrivals = Step(per * rate.before, per * rate.multiple, rate.at_s)
    else:
        return None
    policy = "; ".join(str(limit) for limit in shape.policy)
    return Scenario(
        shape.clients,
        policy,
        arrivals,
        duration_s=shape.duration_s,
        network=CLOUD,
        keys=shape.keys.count,
        seed=seed,
    )


def _figures(run: Run, model: ModelRun) -> dict[str, float]:
    limit, span = run.shape.limit, int(run.shape.duration_s * NS_PER_SECOND)
    keys = [
        metrics.key_figures(
            np.asarray(times, dtype=np.int64),
            np.asarray(model.admitted[k], dtype=np.bool_),
            limit,
            span,
        )
        for k, times in model.times.items()
    ]
    return {
        "Δ vs exact": float(sum(k.admitted - k.ideal for k in keys)),
        "run-long over rT+b": max(k.run_overshoot for k in keys),
        "peak 1-s / r": max(k.peak_window_ratio for k in keys),
    }


def compare(rows: Sequence[dict[str, object]], seeds: int) -> Iterator[Compared]:
    """Each comparable figure of each C row of ``rows``."""
    runs = {run.label: run for run in load_profile("full")}
    for row in rows:
        run = runs.get(str(row["run"]))
        if row["arch"] != "C" or run is None or _scenario(run, 0) is None:
            continue
        played = [_figures(run, simulate(sc)) for s in range(seeds) if (sc := _scenario(run, s))]
        real = {
            "Δ vs exact": float(row["delta_vs_exact"]),  # type: ignore[arg-type]
            "run-long over rT+b": float(row["run_overshoot"]),  # type: ignore[arg-type]
            "peak 1-s / r": float(row["peak_window_ratio"]),  # type: ignore[arg-type]
        }
        rt = run.shape.limit.rate_per_s * run.shape.duration_s
        for figure, value in real.items():
            yield Compared(run.label, figure, value, tuple(p[figure] for p in played), rt)
        ratio = row.get("report_spike_ratio")
        if ratio is not None and run.shape.rate.kind == "step" and run.shape.rate.before > 0:
            low = [sc for s in range(seeds) if (sc := _scenario(run, s))]
            model = tuple(_report_ratio(sc, run) for sc in low)
            yield Compared(run.label, "reports", float(ratio), model, rt)  # type: ignore[arg-type]


def _report_ratio(sc: Scenario, run: Run) -> float:
    """Report RPCs per cycle after the step over before it, as the simulator measures it."""
    rate = run.shape.rate
    per = run.shape.limit.rate_per_s / run.shape.clients
    before = dataclasses.replace(sc, arrivals=Poisson(per * rate.before))
    after = dataclasses.replace(sc, arrivals=Poisson(per * rate.multiple))
    return bounds.report_ratio(simulate(before), simulate(after))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json of python -m bench")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [row for path in args.results for row in json.loads(path.read_text())]
    print("| shape | figure | real | model mean | model range | agrees (tolerance) |")
    print("|---|---|--:|--:|--:|---|")
    for c in compare(rows, args.seeds):
        mean = statistics.fmean(c.model)
        verdict = "yes" if c.agrees else "**no**"
        print(
            f"| {c.run} | {c.figure} | {c.real:.3g} | {mean:.3g} | "
            f"{min(c.model):.3g} to {max(c.model):.3g} | {verdict} (±{c.slack:.3g}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
