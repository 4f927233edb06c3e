"""One table row per (run, architecture): the figures of :mod:`bench.sim.metrics` put together.

Also the targets the simulator reports against, as a table of rules over rows, each saying what
it measured and whether the target is met.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.sim import metrics
from bench.sim.runner import Played
from bench.sim.spec import Run

__all__ = ["REPORT_RPCS", "TARGETS", "Row", "Verdict", "evaluate", "row_of"]

NS = 1_000_000_000
#: The /metrics sample counting batch reports the service answered.
REPORT_RPCS = 'ratekeeper_call_seconds_count{call="report"}'
#: /metrics samples counting calls the service failed: its store failed (it answers OK), or
#: the call itself failed (the client fails open).
FAILURES = ("ratekeeper_store_errors_total", "ratekeeper_service_errors_total")


@dataclass(frozen=True, slots=True)
class Row:
    """The figures of one architecture on one run (rates per second, latencies in µs)."""

    run: str
    shape: str
    network: str
    arch: str
    clients: int
    #: The policy, e.g. ``50/second``.
    limit: str
    offered_per_s: float
    admitted_per_s: float
    p50_us: float
    p99_us: float
    p999_us: float
    #: 99th percentile of how late clients started decisions after they were due (ms): the
    #: harness's own stalls on a loaded machine (and a sync client's queueing), not the limiter's.
    late_p99_ms: float
    #: Worst key: worst 1-s window against r·1s + b, and admitted in it per r.
    window_overshoot: float
    peak_window_ratio: float
    #: Worst key: all admitted hits against r·T + b.
    run_overshoot: float
    #: Admitted minus what an exact token bucket admits of the same offered hits (all keys).
    delta_vs_exact: int
    #: Rejections made while the policy had room (given what was admitted), per offered hit.
    room_rejection_rate: float
    #: Rejections per offered hit on keys under their limit (NaN: no such key).
    false_rejection_rate: float
    #: Failures answered by admitting (fail open): calls that failed at the client, and calls
    #: the service failed (its store failed, or the call did: C's reports then fail open).
    errors: int
    #: Report RPCs per second over the run; and after a 10× step over before it (NaN: n/a).
    reports_per_s: float
    report_spike_ratio: float
    #: Service (and redis-server) CPU seconds per million requests.
    service_cpu_per_m: float
    redis_cpu_per_m: float
    downtime_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _key_figures(run: Run, rec: dict[str, Any], span_ns: int) -> list[metrics.KeyFigures]:
    keys = rec["key"]
    return [
        metrics.key_figures(
            rec["at_ns"][keys == k], rec["admitted"][keys == k], run.shape.limit, span_ns
        )
        for k in np.unique(keys).tolist()
    ]


def _under_limit_false_rate(keys: Sequence[metrics.KeyFigures]) -> float:
    under = [k for k in keys if k.under_limit]
    offered = sum(k.offered for k in under)
    return sum(k.false_rejections for k in under) / offered if offered else math.nan


def _service_failures(played: Played) -> int:
    return sum(
        int(metrics.counter_increase([v[name] for _, v in played.scrapes if name in v]))
        for name in FAILURES
    )


def _report_rates(run: Run, played: Played) -> tuple[float, float]:
    series = [(t, values[REPORT_RPCS]) for t, values in played.scrapes if REPORT_RPCS in values]
    if not series:
        return math.nan, math.nan
    overall = metrics.counter_rate(series, 0.0, run.shape.duration_s)
    rate = run.shape.rate
    if rate.kind != "step" or rate.before <= 0:
        return overall, math.nan
    # Skip a second after the start and after the step so each side is in its steady state.
    before = metrics.counter_rate(series, 1.0, rate.at_s)
    after = metrics.counter_rate(series, rate.at_s + 1.0, run.shape.duration_s)
    return overall, after / before


def row_of(run: Run, played: Played) -> Row:
    """The row of ``played``, one architecture's run of ``run``."""
    rec = played.records
    span_ns = max(int(run.shape.duration_s * NS), int(rec["at_ns"].max(initial=0)))
    keys = _key_figures(run, rec, span_ns)
    offered = int(rec["at_ns"].size)
    p50, p99, p999 = metrics.percentiles(rec["latency_ns"] / 1e3, (0.5, 0.99, 0.999))
    reports, spike = _report_rates(run, played)
    per_m = 1e6 / max(offered, 1)
    return Row(
        run=run.label,
        shape=run.shape.name,
        network=run.network_name,
        arch=played.arch,
        clients=run.shape.clients,
        limit="; ".join(str(limit) for limit in run.shape.policy),
        offered_per_s=offered * NS / span_ns,
        admitted_per_s=int(rec["admitted"].sum()) * NS / span_ns,
        p50_us=p50,
        p99_us=p99,
        p999_us=p999,
        late_p99_ms=metrics.percentiles(rec["late_ns"] / 1e6, (0.99,))[0],
        window_overshoot=max(k.window_overshoot for k in keys),
        peak_window_ratio=max(k.peak_window_ratio for k in keys),
        run_overshoot=max(k.run_overshoot for k in keys),
        delta_vs_exact=sum(k.admitted - k.ideal for k in keys),
        room_rejection_rate=sum(k.false_rejections for k in keys) / max(offered, 1),
        false_rejection_rate=_under_limit_false_rate(keys),
        errors=int(rec["error"].sum()) + _service_failures(played),
        reports_per_s=reports,
        report_spike_ratio=spike,
        service_cpu_per_m=played.service_cpu_s * per_m,
        redis_cpu_per_m=played.redis_cpu_s * per_m,
        downtime_s=played.downtime_s,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target, what was measured against it, and whether it is met (None: not measured)."""

    target: str
    measured: str
    met: bool | None


def _p99_ratio(network: str, goal: float) -> Callable[[Sequence[Row]], Verdict]:
    def judge(rows: Sequence[Row]) -> Verdict:
        by_run: dict[str, dict[str, Row]] = {}
        for row in rows:
            if row.network == network:
                by_run.setdefault(row.run, {})[row.arch] = row
        ratios = {
            run: archs["A"].p99_us / archs["C"].p99_us
            for run, archs in by_run.items()
            if {"A", "C"} <= archs.keys()
        }
        target = f"C's decision p99 ≥ {goal:g}× lower than A's ({network}; goal 100×)"
        if not ratios:
            return Verdict(target, "not measured", None)
        worst = min(ratios, key=ratios.__getitem__)
        measured = f"worst {ratios[worst]:,.0f}× ({worst}); best {max(ratios.values()):,.0f}×"
        return Verdict(target, measured, ratios[worst] >= goal)

    return judge


def _c_rows(rows: Sequence[Row], keep: Callable[[Row], bool]) -> list[Row]:
    return [row for row in rows if row.arch == "C" and keep(row)]


def _overload(rows: Sequence[Row]) -> Verdict:
    chosen = _c_rows(rows, lambda r: r.shape in ("steady-2x", "steady-10x") and r.clients >= 10)
    target = "C overshoot, steady 2× and 10× with ≥ 10 clients: worst 1-s ≤ 5 %, run-long ≤ 2 %"
    if not chosen:
        return Verdict(target, "not measured", None)
    window = max(chosen, key=lambda r: r.window_overshoot)
    run_long = max(chosen, key=lambda r: r.run_overshoot)
    measured = (
        f"worst 1-s {window.window_overshoot:.1%} ({window.run}); "
        f"run-long {run_long.run_overshoot:.1%} ({run_long.run})"
    )
    return Verdict(
        target, measured, window.window_overshoot <= 0.05 and run_long.run_overshoot <= 0.02
    )


def _small(rows: Sequence[Row]) -> Verdict:
    chosen = _c_rows(rows, lambda r: r.shape.startswith("small-"))
    target = "C with small limits (1/s, 5/s): run-long within ±1 request of an exact bucket"
    if not chosen:
        return Verdict(target, "not measured", None)
    measured = "; ".join(f"{r.run}: {r.delta_vs_exact:+d}" for r in chosen)
    return Verdict(target, measured, all(abs(r.delta_vs_exact) <= 1 for r in chosen))


def _false_rejections(rows: Sequence[Row]) -> Verdict:
    chosen = _c_rows(rows, lambda r: not math.isnan(r.false_rejection_rate))
    target = "C false rejections on keys under their limit ≤ 0.1 % of their requests"
    if not chosen:
        return Verdict(target, "not measured", None)
    worst = max(chosen, key=lambda r: r.false_rejection_rate)
    measured = f"worst {worst.false_rejection_rate:.2%} ({worst.run})"
    return Verdict(target, measured, worst.false_rejection_rate <= 0.001)


def _flat_reports(rows: Sequence[Row]) -> Verdict:
    chosen = _c_rows(rows, lambda r: not math.isnan(r.report_spike_ratio))
    target = "C report RPCs/s flat (≤ 1.1×) when request traffic steps up 10×"
    if not chosen:
        return Verdict(target, "not measured", None)
    measured = "; ".join(f"{r.run}: {r.report_spike_ratio:.2f}×" for r in chosen)
    return Verdict(target, measured, all(r.report_spike_ratio <= 1.1 for r in chosen))


#: The targets of the issue, each a rule over every row of a profile run.
TARGETS: tuple[Callable[[Sequence[Row]], Verdict], ...] = (
    _p99_ratio("cloud", 10),
    _p99_ratio("loopback", 10),
    _overload,
    _small,
    _false_rejections,
    _flat_reports,
)


def evaluate(rows: Sequence[Row]) -> list[Verdict]:
    """Every target's verdict on ``rows``."""
    return [judge(rows) for judge in TARGETS]
