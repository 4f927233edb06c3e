"""The per-key bounds the protocol is held to, each as a measure of one run (or two).

Each function returns the bound's measured slack: a number that must be at most its target
(given beside it) for the bound to hold. docs/bounds.md states each bound and its proof sketch;
the property tests and ``bench/model_accuracy.py`` both measure through these functions.

* :func:`run_long_excess`: admitted beyond ``r·T + b + E`` (hits; target 0), where the optimism
  term ``E`` is :func:`optimism` — what the fleet admits in the last report round, which no
  server has seen yet and so cannot yet have charged back;
* :func:`run_long_overshoot`: admitted beyond ``r·T + b`` as a fraction of ``r·T`` (target 1%);
* :func:`false_rejections`: hits rejected that an exact bucket would have admitted, as a
  fraction of the hits offered (target 0.1%);
* :func:`exact_gap`: how far the admitted count is from an exact bucket's (hits; target 1);
* :func:`onset_excess`: admitted in the first second of a step, over ``r + b`` (target 10%);
* :func:`report_ratio`: report RPCs per client per cycle at 10× the traffic over 1× (≤ 1.1).
"""

from __future__ import annotations

from ratekeeper.core.limits import NS_PER_SECOND, Limit, parse_limits
from ratekeeper.testing.model.fleet import Run
from ratekeeper.testing.model.measure import envelope, exact_bucket, key_stats

__all__ = [
    "exact_gap",
    "false_rejections",
    "local_limit_of",
    "onset_excess",
    "optimism",
    "report_ratio",
    "run_long_excess",
    "run_long_overshoot",
]


def local_limit_of(run: Run) -> Limit:
    """The limit the bounds are stated against: the policy's shortest window."""
    limits = parse_limits(run.scenario.limit)
    return min(limits, key=lambda lim: (lim.period_ns, lim.rate_per_s))


def _round_ns(run: Run) -> int:
    """One information round: a hit is reported within the longest interval, and every other
    client hears the server's answer to it within another interval plus the longest round trip.
    """
    sc = run.scenario
    longest = max(sc.interval_of(i) for i in range(sc.clients))
    net = sc.network
    rtt = max(net.up.high, net.up.low) + max(net.down.high, net.down.low)
    return 2 * round(longest * NS_PER_SECOND) + rtt


def optimism(run: Run, key: str) -> float:
    """``E``: the debt the fleet can still owe at the end of the run.

    Closed form: ``E = max_t [min(H(t - R, t], N·(b + r·R)) - r·(T - t)]⁺`` over the instants
    ``t`` of the run's hits, where ``R`` is one information round (:func:`_round_ns`: two report
    intervals plus the longest round trip), ``H(t - R, t]`` the fleet's hits offered in the
    round ending at ``t``, ``b + r·R`` what one client's local limiter can admit in a round and
    ``r·(T - t)`` what the bucket has repaid of that round's debt by the end. A round's
    admissions that no client could yet know of become debt, which the server charges back at
    the refill rate; the debt left at ``T`` is at most the largest such round less what has been
    repaid since. The model does not record who offered which hit, so the per-client minimum
    ``sum_i min(h_i, b + r·R)`` is taken over the fleet: ``min(H, N·(b + r·R))``.
    """
    limit = local_limit_of(run)
    window = _round_ns(run)
    end = int(run.scenario.duration_s * NS_PER_SECOND)
    local = limit.capacity + limit.rate_per_s * window / NS_PER_SECOND
    cap = run.scenario.clients * local
    times = run.times[key]
    worst, lo = 0.0, 0
    for hi, t in enumerate(times):  # the round ending at each hit: its debt only repays after
        while times[lo] <= t - window:
            lo += 1
        repaid = limit.rate_per_s * (end - t) / NS_PER_SECOND
        worst = max(worst, min(float(hi - lo + 1), cap) - repaid)
    return worst


def run_long_excess(run: Run) -> float:
    """Worst key: hits admitted beyond ``r·T + b + E`` (at most 0 when the bound holds)."""
    limit = local_limit_of(run)
    t_s = run.scenario.duration_s
    return max(sum(run.admitted[k]) - envelope(limit, t_s) - optimism(run, k) for k in run.times)


def run_long_overshoot(run: Run) -> float:
    """Worst key: admitted beyond ``r·T + b``, as a fraction of ``r·T``."""
    limit = local_limit_of(run)
    t_s = run.scenario.duration_s
    rt = limit.rate_per_s * t_s
    return max((sum(run.admitted[k]) - envelope(limit, t_s)) / rt for k in run.times)


def false_rejections(run: Run) -> float:
    """Worst key: hits rejected beyond what an exact bucket rejects, per hit offered."""
    limit = local_limit_of(run)
    worst = 0.0
    for k, times in run.times.items():
        if times:
            extra = exact_bucket(times, limit) - sum(run.admitted[k])
            worst = max(worst, extra / len(times))
    return worst


def exact_gap(run: Run) -> int:
    """Worst key: ``|admitted - exact bucket|`` in hits."""
    limit = local_limit_of(run)
    return max(abs(sum(run.admitted[k]) - exact_bucket(t, limit)) for k, t in run.times.items())


def onset_excess(run: Run, onset_s: float) -> float:
    """Worst key: admitted in the first second after ``onset_s``, over ``r + b``, minus one."""
    limit = local_limit_of(run)
    cap = limit.rate_per_s + limit.capacity  # r·(1 s) + b
    worst = -1.0
    for k, times in run.times.items():
        ks = key_stats(times, run.admitted[k], run.scenario.limit, 1.0, onset_s)
        # over the cap first, then divided: 22 of 20 is exactly 0.1 over (22 / 20 - 1 is not)
        worst = max(worst, (ks.first_second - cap) / cap)
    return worst


def report_ratio(low: Run, high: Run) -> float:
    """Report RPCs per client per cycle under ``high`` traffic over the same under ``low``."""

    def per_cycle(run: Run) -> float:
        return sum(run.sent) / max(1, sum(run.cycles))

    return per_cycle(high) / max(per_cycle(low), 1e-9)
