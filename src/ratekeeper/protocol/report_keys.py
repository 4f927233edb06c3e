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
from ratekeeper.core.limits import Limit, ceil_div
from ratekeeper.errors import RequestError
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_settings import ReportSettings
from ratekeeper.protocol.report_values import KeyCounts
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = ["KeyResolver", "ResolvedKey"]


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


class KeyResolver:
    """Resolves report keys under one :class:`ReportSettings`; counts refusals and clamps."""

    def __init__(self, settings: ReportSettings, stats: StatsSink) -> None:
        self._settings = settings
        self._stats = stats

    def resolve(
        self, index: int, key: KeyCounts, policy: Matcher | None, interval: int
    ) -> ResolvedKey:
        """Key ``index`` of a report whose counts cover ``interval`` ns."""
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
        if not (0 <= key.admitted <= s.max_count and 0 <= key.rejected <= s.max_count):
            self._stats.count(Event.REPORT_KEY_REFUSED)
            return ResolvedKey((), False, 0.0, (), f"{where}: counts must be 0..{s.max_count}")
        match = policy.match(key.domain, key.entries) if policy is not None else None
        if match is None:
            counters = tuple(Counter(key.domain, key.entries, lim) for lim in key.limits)
            shadow = False
        else:
            rule = match.rule
            limits: Sequence[Limit] = () if rule.unlimited else rule.limits
            counters = tuple(Counter(key.domain, match.counter_entries, lim) for lim in limits)
            shadow = rule.shadow_mode
        bounds = [self.bound(c.limit) for c in counters]
        admitted = tuple(min(key.admitted, b) for b in bounds)
        rejected = min(key.rejected, max(bounds, default=key.rejected))
        if rejected < key.rejected or admitted != (key.admitted,) * len(bounds):
            self._stats.count(Event.REPORT_COUNT_CLAMPED)
        demand = demand_rate(max(admitted, default=key.admitted), rejected, interval)
        return ResolvedKey(counters, shadow, demand, admitted)

    def bound(self, limit: Limit) -> int:
        """Most hits a report may count against ``limit``: what it could admit in the longest
        report interval (plus its burst), times ``count_bound_intervals``."""
        s = self._settings
        refill = ceil_div(limit.amount * s.max_interval_ns, limit.period_ns)
        return s.count_bound_intervals * (limit.capacity + refill)
