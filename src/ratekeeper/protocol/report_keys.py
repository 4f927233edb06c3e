"""One report key resolved: the counters it counts against, its clamped counts, its demand.

A key's limits are a configured rule's (matched like an Envoy RLS descriptor: a rule always
wins), else the limits the client declared inline for it, else none (not counted). Its counts
are validated (a key out of range is refused alone: :attr:`ResolvedKey.error`) and clamped to
what the policy could admit in the longest report interval, times
``ReportSettings.count_bound_intervals``. Raises :class:`~ratekeeper.errors.RequestError` naming
the key for a malformed one (the whole report is refused before anything is applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ratekeeper.backends.store import Counter
from ratekeeper.core.instructions import demand_rate
from ratekeeper.core.limits import NS_PER_SECOND, Limit, ceil_div
from ratekeeper.errors import RequestError
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_settings import ReportSettings
from ratekeeper.protocol.report_values import KeyCounts
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = ["KeyResolver", "KeyShape", "ResolvedKey"]


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """One report key, resolved: what it counts against and how to answer it."""

    counters: tuple[Counter, ...]
    #: Counted, but always answered "admit" (a shadow-mode rule).
    shadow: bool
    #: Demand of this key alone (hits/s).
    demand: float
    #: Admitted hits to debit from each of ``counters`` (clamped per counter), aligned.
    admitted: tuple[int, ...]
    #: Why the key's counts were refused (nothing applied); empty if they were not.
    error: str = ""


@dataclass(frozen=True, slots=True)
class KeyShape:
    """What a key counts against, whatever its counts: what a server keeps of an interned key."""

    #: The key as first reported (its counts are not used).
    key: KeyCounts
    #: The policy it was resolved under (resolved again when another is in force).
    policy: Matcher | None
    counters: tuple[Counter, ...]
    shadow: bool
    #: Most hits one report may count against each of ``counters`` (aligned), and the largest.
    bounds: tuple[int, ...]
    top: int


_NO_COUNTERS: tuple[Counter, ...] = ()


class KeyResolver:
    """Resolves report keys under one :class:`ReportSettings`; counts refusals and clamps."""

    def __init__(self, settings: ReportSettings, stats: StatsSink) -> None:
        self._settings = settings
        self._stats = stats
        self._max_count = settings.max_count

    def resolve(
        self, index: int, key: KeyCounts, policy: Matcher | None, interval: int
    ) -> ResolvedKey:
        """Key ``index`` of a report whose counts cover ``interval`` ns."""
        self.validate(index, key)
        return self.counted(self.shape(key, policy), key.admitted, key.rejected, interval, index)

    def validate(self, index: int, key: KeyCounts) -> None:
        """Raise :class:`RequestError` if ``key``'s name or inline limits are malformed."""
        s = self._settings
        where = f"keys[{index}]"
        if not 0 < len(key.domain) <= s.max_text:
            raise RequestError(f"{where}: domain must have 1..{s.max_text} characters")
        if not 0 < len(key.entries) <= s.max_entries:
            raise RequestError(f"{where}: 1..{s.max_entries} entries required")
        if any(len(k) > s.max_text or len(v) > s.max_text for k, v in key.entries):
            raise RequestError(f"{where}: entry longer than {s.max_text} characters")
        if len(key.limits) > s.max_limits:
            raise RequestError(f"{where}: at most {s.max_limits} inline limits")

    def shape(self, key: KeyCounts, policy: Matcher | None) -> KeyShape:
        """The counters of a validated ``key`` under ``policy``, and their count bounds."""
        match = policy.match(key.domain, key.entries) if policy is not None else None
        if match is None:
            counters = tuple(Counter(key.domain, key.entries, lim) for lim in key.limits)
            shadow = False
        else:
            rule = match.rule
            limits: Sequence[Limit] = () if rule.unlimited else rule.limits
            counters = tuple(Counter(key.domain, match.counter_entries, lim) for lim in limits)
            shadow = rule.shadow_mode
        bounds = tuple(self.bound(c.limit) for c in counters)
        return KeyShape(key, policy, counters, shadow, bounds, max(bounds, default=-1))

    def counted(
        self, shape: KeyShape, admitted: int, rejected: int, interval: int, index: int
    ) -> ResolvedKey:
        """``shape`` with these counts: validated (a key out of range is refused alone) and
        clamped; ``index`` names it in an error."""
        most = self._max_count
        if not (0 <= admitted <= most and 0 <= rejected <= most):
            self._stats.count(Event.REPORT_KEY_REFUSED)
            error = f"keys[{index}]: counts must be 0..{most}"
            return ResolvedKey(_NO_COUNTERS, False, 0.0, (), error)
        bounds = shape.bounds
        if len(bounds) == 1:  # the common case, without the generic walk
            bound = bounds[0]
            one = admitted if admitted <= bound else bound
            if one < admitted or rejected > bound:
                self._stats.count(Event.REPORT_COUNT_CLAMPED)
                rejected = min(rejected, bound)
            demand = (one + rejected) * NS_PER_SECOND / max(interval, 1_000_000)
            return ResolvedKey(shape.counters, shape.shadow, demand, (one,))
        clamped = tuple(min(admitted, b) for b in bounds)
        top = shape.top if bounds else rejected
        if rejected > top or clamped != (admitted,) * len(bounds):
            self._stats.count(Event.REPORT_COUNT_CLAMPED)
            rejected = min(rejected, top)
        demand = demand_rate(max(clamped, default=admitted), rejected, interval)
        return ResolvedKey(shape.counters, shape.shadow, demand, clamped)

    def bound(self, limit: Limit) -> int:
        """Most hits a report may count against ``limit``: what it could admit in the longest
        report interval (plus its burst), times ``count_bound_intervals``."""
        s = self._settings
        refill = ceil_div(limit.amount * s.max_interval_ns, limit.period_ns)
        return s.count_bound_intervals * (limit.capacity + refill)
