"""Batch reports: apply a client's :class:`Report`, answer each key with an instruction.

A report carries, per key, the hits the client admitted and rejected since its previous report.
:class:`ReportProcessor`

1. resolves each key's limits: a configured rule matched like an Envoy RLS descriptor wins; a
   key no rule matches is counted against the limits the client declared inline for it (e.g.
   ``"100/s burst 200"``; validated and capped on the wire), or not counted at all if it
   declared none;
2. debits the admitted hits from every counter in one ``debit`` call, past zero if need be (the
   bucket's debt is how overshoot between reports is paid back);
3. records the client's demand (admitted + rejected per second) per counter, and answers each
   key with :func:`~ratekeeper.core.instructions.instruct`: reject until the counter's debt is
   repaid, then admit at the client's proportional share of the refill rate (plus its share of
   any unspent surplus) when total demand exceeds the policy, unbounded otherwise.
   Instructions hold for a few of the client's report intervals.

Reports are applied at most once: a client numbers its reports to each server and resends one
whose answer it never got (a timeout: the server may or may not have applied it); the processor
remembers each client's last applied number (bounded, least recently seen forgotten first) and
answers a repeat without debiting it again. With the client's resend this makes every hit count
exactly once unless the server restarts (and then the buckets are gone too).

Reports come from untrusted clients, so what one report can do is bounded (issue 16):

* a key whose admitted or rejected count is out of range (negative, or above
  ``ReportSettings.max_count``) is refused alone: nothing of it is applied, its instruction
  carries the ``error`` and holds for no time (the client falls back to its local limiter); the
  report's other keys are applied and answered. Every key is validated before anything is
  applied, so no report is refused after a partial apply;
* counts in range but above what the policy could admit in the longest report interval, times
  ``ReportSettings.count_bound_intervals``, are clamped to that bound (counted:
  ``Event.REPORT_COUNT_CLAMPED``);
* a counter's debt is capped at ``DEBT_HORIZON_PERIODS`` periods of its refill
  (:mod:`ratekeeper.core.token_bucket`), so no report blocks a key for longer than that horizon
  after its bucket is empty (a window counter is blocked at most until its window rolls);
* report numbers cannot be hijacked by a spoofed client id: a number more than
  ``ReportSettings.sequence_window`` past the client's last one, plus one per minimum report
  interval elapsed since, is refused (``Event.REPORT_SEQUENCE_REFUSED``) and changes nothing; a
  client first seen with a number beyond the window is applied but not remembered.

Raises :class:`~ratekeeper.errors.RequestError` naming the key and the reason for a malformed
report, and the store's :class:`~ratekeeper.errors.BackendError` when it fails (the client keeps
its last instructions until they expire: fail open). Event loop only: single writer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.demand import DemandBook, until_repaid
from ratekeeper.core.instructions import UNBOUNDED, Instruction, demand_rate, instruct
from ratekeeper.core.limits import NS_PER_SECOND, Limit, ceil_div
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import RequestError
from ratekeeper.protocol.hot import HotKeys
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import Event, MemoryStats, StatsSink

__all__ = ["ReportProcessor", "ReportSettings"]

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Bounds on what a report may carry, and how long answers hold."""

    #: Most keys one report may carry (a client with more sends the rest next cycle).
    max_keys: int = 10_000
    #: Most descriptor entries per key (Envoy's descriptors are short).
    max_entries: int = 16
    #: Longest domain, entry key or entry value, in characters.
    max_text: int = 256
    #: Longest client id.
    max_client_id: int = 128
    #: Most inline limits per key.
    max_limits: int = 4
    #: Report intervals are clamped to this range before use (ns).
    min_interval_ns: int = 10 * _MS
    max_interval_ns: int = 10 * NS_PER_SECOND
    #: An instruction holds for this many of the client's report intervals.
    valid_intervals: int = 3
    #: A client's demand counts for this long after its report (a few intervals).
    demand_ttl_ns: int = 500 * _MS
    #: Most clients remembered per counter, and (counter, client) entries in all.
    max_clients_per_counter: int = 256
    max_demand_entries: int = 100_000
    #: A counter's unspent tokens are handed out over this horizon.
    surplus_horizon_ns: int = NS_PER_SECOND
    #: Most clients whose last report number is remembered (for resent reports).
    max_sequenced_clients: int = 100_000
    #: Largest admitted or rejected count a key may carry; a key beyond it is refused alone.
    max_count: int = 2**53 - 1
    #: Counts above this many times what a counter's limit admits in ``max_interval_ns`` (plus
    #: its burst) are clamped to that bound.
    count_bound_intervals: int = 10
    #: Most report numbers a client may skip (plus one per ``min_interval_ns`` elapsed since its
    #: last report); a bigger jump is refused.
    sequence_window: int = 1024
    #: Most keys in a rejection period sent with every answer (:mod:`ratekeeper.protocol.hot`).
    max_hot_keys: int = 256


@dataclass(frozen=True, slots=True)
class _Key:
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


class ReportProcessor:
    """Applies reports through a :class:`StoreGate`; see the module docstring."""

    def __init__(
        self,
        store: StoreGate,
        policies: Callable[[], Matcher | None],
        settings: ReportSettings = ReportSettings(),
        stats: StatsSink | None = None,
    ) -> None:
        """``policies`` returns the policy in force (``None``: no configured rules)."""
        self._store = store
        self._policies = policies
        self._settings = settings
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._demand: DemandBook[Counter] = DemandBook(
            settings.demand_ttl_ns,
            max_clients=settings.max_clients_per_counter,
            max_entries=settings.max_demand_entries,
        )
        #: Per client: its last applied report number and when it was applied.
        self._sequences: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._hot = HotKeys(settings.max_hot_keys)
        #: Reports answered (one per client per cycle).
        self.reports = 0

    async def process(self, report: Report, now: int) -> ReportAnswer:
        """Apply ``report`` at ``now`` (ns since the epoch) and answer each of its keys."""
        s = self._settings
        if not 0 < len(report.client_id) <= s.max_client_id:
            raise RequestError(f"client_id must have 1..{s.max_client_id} characters")
        if len(report.keys) > s.max_keys:
            raise RequestError(f"{len(report.keys)} keys in one report; at most {s.max_keys}")
        interval = min(max(report.interval_ns, s.min_interval_ns), s.max_interval_ns)
        policy = self._policies()
        keys = [self._resolve(i, k, policy, interval) for i, k in enumerate(report.keys)]
        client, sequence = report.client_id, report.sequence
        before = self._claim(client, sequence, now)
        fresh = before is None or sequence > before[0]
        # what this client's local limiter could have admitted since its last applied report
        since = 0 if before is None or before[0] == 0 else now - before[1]
        round_ns = min(max(3 * interval, since), s.max_interval_ns)
        hits = [
            Hit(c, n if fresh else 0, client, debt=self._debt(c, client, round_ns))
            for key in keys
            for c, n in zip(key.counters, key.admitted, strict=True)
        ]
        try:
            outcomes = await self._store.debit(hits, now) if hits else []
        except BaseException:
            mine = self._sequences.get(client)
            if fresh and mine is not None and mine[0] == sequence:
                # not applied: the client's resend must count
                if before is None or before[0] == 0:
                    del self._sequences[client]
                else:
                    self._sequences[client] = before
            raise
        state = dict(zip((h.counter for h in hits), outcomes, strict=True))  # last one wins
        valid_for = s.valid_intervals * interval
        totals = self._record_demand(client, keys, now, valid_for)
        self.reports += 1
        answers = tuple(self._instruct(key, state, totals, valid_for) for key in keys)
        for sent, answer in zip(report.keys, answers, strict=True):
            self._hot.note(sent.domain, sent.entries, answer.reject_for_ns, now)
        return ReportAnswer(answers, self._hot.current(now))

    def _claim(self, client: str, sequence: int, now: int) -> tuple[int, int] | None:
        """Mark report ``sequence`` of ``client`` as applied; its number and time before (``(0,
        now)`` at first sight), or ``None`` when the report is applied unnumbered.

        Claimed before the store is awaited, so a resend arriving meanwhile is a repeat; undone
        if the store fails, so the resend is applied instead. Raises :class:`RequestError` for a
        jump past the window (a spoofed client id must not make the real client's reports
        repeats).
        """
        if sequence == 0:
            return None
        s = self._settings
        seen = self._sequences.get(client)
        if seen is None:
            if sequence > s.sequence_window:
                # Far from 1 at first sight: a spoof, or a server that forgot the client. Apply
                # it, but remember nothing a later report could be mistaken a repeat of.
                self._stats.count(Event.REPORT_SEQUENCE_REFUSED)
                return None
            seen = (0, now)
        window = s.sequence_window + max(0, now - seen[1]) // s.min_interval_ns
        if sequence > seen[0] + window:
            self._stats.count(Event.REPORT_SEQUENCE_REFUSED)
            raise RequestError(
                f"sequence {sequence} jumps more than {window} past this client's last report"
            )
        self._sequences.pop(client, None)
        self._sequences[client] = (sequence, now) if sequence > seen[0] else seen
        if len(self._sequences) > s.max_sequenced_clients:
            self._sequences.popitem(last=False)
        return seen

    def _resolve(self, index: int, key: KeyCounts, policy: Matcher | None, interval: int) -> _Key:
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
            return _Key((), False, 0.0, (), f"{where}: counts must be 0..{s.max_count}")
        match = policy.match(key.domain, key.entries) if policy is not None else None
        if match is None:
            counters = tuple(Counter(key.domain, key.entries, lim) for lim in key.limits)
            shadow = False
        else:
            rule = match.rule
            limits: Sequence[Limit] = () if rule.unlimited else rule.limits
            counters = tuple(Counter(key.domain, match.counter_entries, lim) for lim in limits)
            shadow = rule.shadow_mode
        bounds = [self._bound(c.limit) for c in counters]
        admitted = tuple(min(key.admitted, b) for b in bounds)
        rejected = min(key.rejected, max(bounds, default=key.rejected))
        if rejected < key.rejected or admitted != (key.admitted,) * len(bounds):
            self._stats.count(Event.REPORT_COUNT_CLAMPED)
        demand = demand_rate(max(admitted, default=key.admitted), rejected, interval)
        return _Key(counters, shadow, demand, admitted)

    def _debt(self, counter: Counter, client: str, round_ns: int) -> int:
        """Tokens of debt ``counter`` may carry: what the clients reporting it (this one
        included) can admit in one round at their local pace, ``n·(b + r·R)``.

        ``R`` is three report intervals (how long an admission can stay unknown to the fleet:
        reported within an interval, heard by the others within another, plus round trips), or
        the time since the client's last applied report if longer (its reports failed meanwhile:
        a client's local limiter admits at most ``b + r·R`` in any ``R``), at most the longest
        report interval. A fleet's optimism is carried as debt and charged back rather than
        forgiven, and one report still cannot block a key for long: ``R`` is bounded, and so
        are the clients counted (``max_clients_per_counter``).
        """
        limit = counter.limit
        clients = self._demand.clients(counter, client)
        refill = ceil_div(limit.amount * round_ns, limit.period_ns)
        return clients * (limit.capacity + refill)

    def _bound(self, limit: Limit) -> int:
        """Most hits a report may count against ``limit``: what it could admit in the longest
        report interval (plus its burst), times ``count_bound_intervals``."""
        s = self._settings
        refill = ceil_div(limit.amount * s.max_interval_ns, limit.period_ns)
        return s.count_bound_intervals * (limit.capacity + refill)

    def _record_demand(
        self, client: str, keys: list[_Key], now: int, ttl_ns: int
    ) -> dict[Counter, float]:
        """Record the client's demand per counter (keys sharing one add up), counting for as long
        as its instructions hold (``ttl_ns``); the total per counter."""
        mine: dict[Counter, float] = {}
        for key in keys:
            for counter in key.counters:
                mine[counter] = mine.get(counter, 0.0) + key.demand
        return {c: self._demand.record(c, client, rate, now, ttl_ns) for c, rate in mine.items()}

    def _instruct(
        self,
        key: _Key,
        state: dict[Counter, Outcome],
        totals: dict[Counter, float],
        valid_for: int,
    ) -> Instruction:
        """The strictest of the key's per-counter instructions; unlimited when it counts
        nothing (or is in shadow mode)."""
        if key.error:
            return Instruction(0, UNBOUNDED, 0, (), key.error)
        if key.shadow or not key.counters:
            return Instruction(0, UNBOUNDED, valid_for)
        reject_for, rate = 0, UNBOUNDED
        for counter in key.counters:
            one = instruct(
                state[counter],
                counter.limit,
                key.demand,
                totals[counter],
                valid_for,
                self._settings.surplus_horizon_ns,
                repay_debt=True,  # shares shrink while the bucket is in debt (issue 11, bound 3)
            )
            one = until_repaid(one, counter.limit)
            reject_for = max(reject_for, one.reject_for_ns)
            rate = min(rate, one.admit_rate)
        return Instruction(reject_for, rate, valid_for, tuple(c.limit for c in key.counters))
