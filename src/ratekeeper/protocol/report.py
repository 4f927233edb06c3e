"""Batch reports: apply a client's :class:`Report`, answer each key with an instruction.

A report carries, per key, the hits the client admitted and rejected since its previous report.
:class:`ReportProcessor`

1. resolves each key's limits (:mod:`.report_keys`): a configured rule matched like an Envoy
   RLS descriptor wins; a key no rule matches is counted against the limits the client
   declared inline for it (e.g. ``"100/s burst 200"``; validated and capped on the wire), or
   not counted at all if it declared none;
2. debits the admitted hits from every counter, past zero if need be (the bucket's debt is how
   overshoot between reports is paid back);
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

Each step walks the keys in chunks of ``ReportSettings.chunk_keys`` and awaits the injected
pause between chunks (:mod:`.chunked`), so a 10,000-key report does not hold the server's event
loop (issue 15); a store failure after part of a report was debited leaves the report claimed
(the rest is lost, as a lost report's counts are) rather than let the resend count the applied
part twice.

A steady compact report (every key sent by id, each counting against one token bucket in this
process's memory) is applied by :mod:`.report_fast` instead: the same steps and bounds,
array-at-a-time; anything else takes the steps above.

Raises :class:`~ratekeeper.errors.RequestError` naming the key and the reason for a malformed
report, and the store's :class:`~ratekeeper.errors.BackendError` when it fails (the client keeps
its last instructions until they expire: fail open). Event loop only: single writer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.demand import DemandBook, until_repaid
from ratekeeper.core.fleet_slots import FleetSlots
from ratekeeper.core.instructions import UNBOUNDED, Instruction, instruct
from ratekeeper.core.limits import ceil_div
from ratekeeper.core.outcome import Outcome
from ratekeeper.core.restart_watch import RestartWatch
from ratekeeper.core.slices import HASH_SPACE
from ratekeeper.errors import RequestError
from ratekeeper.protocol.chunked import Chunker, Pause
from ratekeeper.protocol.hot import HotKeys
from ratekeeper.protocol.ownership import MeteredOwnership, StoreGate, WholeSpace
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_fast import FastReports, Resolved
from ratekeeper.protocol.report_interned import Interning, Known
from ratekeeper.protocol.report_keys import KeyResolver, ResolvedKey
from ratekeeper.protocol.report_settings import ReportSettings
from ratekeeper.protocol.report_values import Report, ReportAnswer
from ratekeeper.protocol.stats import Event, MemoryStats, StatsSink

__all__ = ["ReportProcessor", "ReportSettings"]

_DEFAULTS = ReportSettings()

log = logging.getLogger(__name__)


class ReportProcessor:
    """Applies reports through a :class:`StoreGate`; see the module docstring."""

    def __init__(
        self,
        store: StoreGate,
        policies: Callable[[], Matcher | None],
        settings: ReportSettings = _DEFAULTS,
        stats: StatsSink | None = None,
        pause: Pause | None = None,
    ) -> None:
        """``policies`` returns the policy in force (``None``: no configured rules); ``pause``
        is awaited between chunks of a large report (``None``: a report never suspends but
        for the store)."""
        self._store = store
        self._policies = policies
        self._settings = settings
        self._stats: StatsSink = MemoryStats() if stats is None else stats
        self._interning = Interning(KeyResolver(settings, self._stats), settings.max_interned_keys)
        self._chunks = Chunker(settings.chunk_keys, pause)
        self._demand: DemandBook[Counter] = DemandBook(
            settings.demand_ttl_ns,
            max_clients=settings.max_clients_per_counter,
            max_entries=settings.max_demand_entries,
        )
        #: Per client: its last applied report number and when it was applied.
        self._sequences: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._hot = HotKeys(settings.max_hot_keys)
        self._fleet = FleetSlots(settings.max_sequenced_clients)
        #: Steady compact reports: the store is this process's memory, all ours or metered.
        self._fast: FastReports | None = None
        own = store.ownership
        if isinstance(store.store, MemoryStore) and isinstance(own, WholeSpace | MeteredOwnership):
            self._fast = FastReports(
                store.store, self._interning, self._demand, self._hot, self._chunks, settings,
                self._stats, self._debt, None if isinstance(own, WholeSpace) else store,
            )  # fmt: skip
        #: A lone in-memory server watches its first reports for a restart (its counters are
        #: lost: :mod:`ratekeeper.core.restart_watch`); ``None`` once the watch is over, or
        #: for a store that outlives the process or a cluster member (hand-off's cold ranges).
        self._restart: RestartWatch | None = None
        if isinstance(store.store, MemoryStore) and isinstance(store.ownership, WholeSpace):
            watch = RestartWatch(settings.restart_cold_ns)
            self._restart = None if watch.done else watch
        #: Reports answered (one per client per cycle).
        self.reports = 0

    @property
    def pause(self) -> Pause | None:
        """Awaited between chunks of a large report (its driver's: see :mod:`.chunked`)."""
        return self._chunks.pause

    @pause.setter
    def pause(self, pause: Pause | None) -> None:
        self._chunks.pause = pause

    @property
    def chunk_keys(self) -> int:
        """Keys walked between two pauses."""
        return self._chunks.size

    async def process(self, report: Report, now: int) -> ReportAnswer:
        """Apply ``report`` at ``now`` (ns since the epoch) and answer each of its keys, and
        with the fleet this server hears from and the client's slot in it
        (:mod:`ratekeeper.core.fleet_slots`; a client counts for as long as its instructions
        hold)."""
        answer = await self._answer(report, now)
        fleet, slot = self._fleet.seen(report.client_id, now, answer.valid_for_ns)
        return answer.with_fleet(fleet, slot)

    async def _answer(self, report: Report, now: int) -> ReportAnswer:
        """Apply ``report`` at ``now`` (ns since the epoch) and answer each of its keys.

        Every phase walks the keys in chunks with a pause between them (:mod:`.chunked`); every
        key is resolved (and validated) before anything is applied.
        """
        s = self._settings
        client, sequence = report.client_id, report.sequence
        if not 0 < len(client) <= s.max_client_id:
            raise RequestError(f"client_id must have 1..{s.max_client_id} characters")
        ids = report.known_ids
        if len(report.keys) + len(ids) > s.max_keys:
            raise RequestError(
                f"{len(report.keys) + len(ids)} keys in one report; at most {s.max_keys}"
            )
        if not len(ids) == len(report.known_admitted) == len(report.known_rejected):
            raise RequestError("known_ids, known_admitted and known_rejected must align")
        interval = min(max(report.interval_ns, s.min_interval_ns), s.max_interval_ns)
        if self._restart is not None:
            await self._watch_restart(self._restart, client, sequence, now)
        if not report.keys and not ids:
            # a probe (a client reports every cycle, hits or not): numbered, nothing to apply
            self._claim(client, sequence, now)
            self.reports += 1
            return ReportAnswer((), self._hot.current(now), (), (), s.valid_intervals * interval)
        policy = self._policies()
        fast = self._fast
        if fast is not None:
            resolved = await fast.resolve(report, policy, interval)
            if resolved is not None:
                return await self._process_fast(fast, report, resolved, interval, now)
        chunks, interning = self._chunks, self._interning
        sent = report.keys
        keys: list[ResolvedKey] = []
        known = Known()
        for start, stop in chunks.spans(len(sent)):
            keys.extend(
                interning.full(client, i, sent[i], policy, interval, known)
                for i in range(start, stop)
            )
            await chunks.between(stop, len(sent))
        if ids:
            mine = interning.table.of(client)
            for span in chunks.spans(len(ids)):
                interning.known(mine, report, span, policy, interval, known)
                await chunks.between(span[1], len(ids))
        counted = keys + known.keys if known.keys else keys
        before = self._claim(client, sequence, now)
        fresh, round_ns, omit = self._round(report, before, interval, now)
        state: dict[Counter, Outcome] = {}
        try:
            await self._debit(client, counted, 1 if fresh else 0, round_ns, state, now)
        except BaseException:
            claimed = self._sequences.get(client)
            if not state and fresh and claimed is not None and claimed[0] == sequence:
                # nothing applied: the client's resend must count (after a partial apply the
                # claim stands: the rest is lost, as a lost report's is, rather than the applied
                # part counted twice)
                if before is None or before[0] == 0:
                    del self._sequences[client]
                else:
                    self._sequences[client] = before
            raise
        valid_for = s.valid_intervals * interval
        totals = await self._record_demand(client, counted, now, valid_for)
        self.reports += 1
        answers = await chunks.map(
            lambda key: self._instruct(key, state, totals, valid_for), counted
        )
        full, rest = answers[: len(keys)], answers[len(keys) :]
        for i, answer in enumerate(full):
            if answer.reject_for_ns:  # only these are hashed (and re-read from the report)
                self._hot.note(sent[i].domain, sent[i].entries, answer.reject_for_ns, now)
        for entry, answer in zip(known.entries, rest, strict=True):
            if answer.reject_for_ns:
                key = entry.shape.key
                self._hot.note(key.domain, key.entries, answer.reject_for_ns, now)
        changed, instructions = interning.answer(known, rest, omit, valid_for)
        interning.sent(known.fresh, full)
        return ReportAnswer(
            tuple(full),
            self._hot.current(now),
            changed,
            instructions,
            valid_for,
            tuple(known.unknown),
        )

    async def _process_fast(
        self, fast: FastReports, report: Report, resolved: Resolved, interval: int, now: int
    ) -> ReportAnswer:
        """:meth:`process` for a report the fast path took (:mod:`.report_fast`): claimed,
        then applied there (the memory store cannot fail, so there is no claim to undo)."""
        client = report.client_id
        before = self._claim(client, report.sequence, now)
        fresh, round_ns, omit = self._round(report, before, interval, now)
        valid_for = self._settings.valid_intervals * interval
        answer = await fast.apply(
            client, resolved, 1 if fresh else 0, round_ns, omit, valid_for, now
        )
        self.reports += 1
        return answer

    async def _watch_restart(
        self, watch: RestartWatch, client: str, sequence: int, now: int
    ) -> None:
        """Mark the store cold (or lift the mark) as ``watch`` says for this report: a client
        first seen here numbering past 1 reported to an earlier process on this address."""
        mark = watch.observe(sequence > 1 and client not in self._sequences, now)
        if mark is not None:
            await self._store.store.start_empty(0, HASH_SPACE, mark.since)
            if mark.since is not None:  # once per process: say why keys start empty
                log.warning(
                    "client %s numbers its first report here %d: this server was restarted and"
                    " lost its counters; new counters start empty for %.1f s",
                    client, sequence, watch.window_ns / 1e9,
                )  # fmt: skip
        if watch.done:
            self._restart = None

    def _round(
        self, report: Report, before: tuple[int, int] | None, interval: int, now: int
    ) -> tuple[bool, int, bool]:
        """For a report claimed with ``before`` (:meth:`_claim`): whether it is applied for
        the first time (a repeat debits nothing), the round a debt is bounded over
        (:meth:`_debt`), and whether unchanged answers may be left out."""
        sequence = report.sequence
        fresh = before is None or sequence > before[0]
        # what this client's local limiter could have admitted since its last applied report
        since = 0 if before is None or before[0] == 0 else now - before[1]
        round_ns = min(max(3 * interval, since), self._settings.max_interval_ns)
        # leave unchanged ones out only right after an answer the client applied
        omit = report.omit_unchanged and before is not None and 0 < before[0] == sequence - 1
        return fresh, round_ns, omit

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

    async def _debit(
        self,
        client: str,
        keys: list[ResolvedKey],
        scale: int,
        round_ns: int,
        state: dict[Counter, Outcome],
        now: int,
    ) -> None:
        """Debit ``scale`` times each key's admitted hits (0: a repeat, counted as nothing) as
        ``client``'s, each counter's debt capped per :meth:`_debt` over ``round_ns``, a chunk
        per store call; each counter's outcome into ``state`` (the last one wins)."""
        chunks, debit, debt = self._chunks, self._store.debit, self._debt
        for start, stop in chunks.spans(len(keys)):
            hits: list[Hit] = []
            add = hits.append
            for key in keys[start:stop]:
                counters = key.counters
                if len(counters) == 1:  # the common case, without a zip per key
                    add(
                        Hit(
                            c0 := counters[0],
                            key.admitted[0] * scale,
                            client,
                            debt=debt(c0, client, round_ns),
                        )
                    )
                elif counters:
                    hits.extend(
                        Hit(c, n * scale, client, debt=debt(c, client, round_ns))
                        for c, n in zip(counters, key.admitted, strict=True)
                    )
            if hits:
                outcomes = await debit(hits, now)
                state.update(zip((h.counter for h in hits), outcomes, strict=True))
            await chunks.between(stop, len(keys))

    async def _record_demand(
        self, client: str, keys: list[ResolvedKey], now: int, ttl_ns: int
    ) -> dict[Counter, float]:
        """Record the client's demand per counter (keys sharing one add up), counting for as long
        as its instructions hold (``ttl_ns``); the total per counter.

        Both walks pause between chunks (:mod:`.chunked`); the maths is that of one pass."""
        chunks = self._chunks
        mine: dict[Counter, float] = {}
        for start, stop in chunks.spans(len(keys)):
            for key in keys[start:stop]:
                for counter in key.counters:
                    mine[counter] = mine.get(counter, 0.0) + key.demand
            await chunks.between(stop, len(keys))
        record, totals = self._demand.record, {}
        rates = list(mine.items())
        for start, stop in chunks.spans(len(rates)):
            for counter, rate in rates[start:stop]:
                totals[counter] = record(counter, client, rate, now, ttl_ns)
            await chunks.between(stop, len(rates))
        return totals

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

    def _instruct(
        self,
        key: ResolvedKey,
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
