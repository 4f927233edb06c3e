"""Steady-state compact reports applied array-at-a-time (issue 15, item 1: 2 µs a key-update).

A fleet's reports are nearly all the same shape: a client reports by id (``known_ids``) the keys
it interned on earlier reports, each counted against one token bucket the server already holds.
:class:`FastReports` applies such a report with what :class:`~.report.ReportProcessor` would do,
step for step, but without its per-key objects: each interned key keeps a :class:`FastKey` (its
counter, its bucket's place in the memory store, its demand book, the numbers of its limit),
built on the key's first steady report and rebuilt when the policy is reloaded; the report's
counts are read as arrays; the buckets are debited by the store in one call per chunk
(:meth:`~ratekeeper.backends.memory.MemoryStore.debit_buckets`), the demand recorded in one
(:meth:`~ratekeeper.core.demand.DemandBook.record_each`), and each key's instruction is worked
out in place and built only when it changed (the answer leaves the others out).

A cluster member takes it too (a metered ownership: its slices): each chunk's keys are charged
to their slices, those it does not own counted as misdirected, at its
:class:`~.ownership.StoreGate` before they are debited, as a store call through the gate does.
Every bound of the general path holds as it is, since the general path is what runs for anything
else: a report qualifies only if it sends no key in full, every id is interned for the client,
every count is in range (``0..max_count``: a refused key needs an error answer), every key
counts against exactly one token bucket with no shadow mode, and no two keys share a counter.
Counts are clamped to the same per-counter bound, the debt is capped by the same
``n·(b + r·R)``, and every phase pauses between chunks as the general path's do (chunks
:data:`CHUNK_SCALE` times longer, as cheaper: a 10,000-key report still yields to the loop).
``tests/protocol/test_report_fast.py`` checks answers, store and stats against the general
path.

The instruction maths is :func:`~ratekeeper.core.instructions.instruct` with ``repay_debt`` and
:func:`~ratekeeper.core.demand.until_repaid`, for a token bucket, written out; change one,
change both. Event loop only, as the processor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, attrgetter, is_, mul, truediv
from typing import cast

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.memory_buckets import BucketRef, outcome_of
from ratekeeper.backends.store import Counter
from ratekeeper.core.demand import Book, DemandBook
from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol.chunked import Chunker
from ratekeeper.protocol.hot import HotKeys
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report_interned import ClientKeys, Interned, Interning
from ratekeeper.protocol.report_settings import ReportSettings
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = ["CHUNK_SCALE", "FastKey", "FastReports", "Plan", "Resolved"]


@dataclass(slots=True, eq=False)
class FastKey:
    """What the fast path keeps of one interned key (:attr:`Interned.fast`)."""

    #: The policy it was built under (built again under another).
    policy: Matcher | None
    #: Its one counter (the demand book's key), and the counter's book as last seen.
    key: Counter
    book: Book | None
    #: Its bucket in the memory store, and the bucket's ``period_ns``.
    ref: BucketRef
    period_ns: int
    #: Most hits one report may count (``KeyShape.bounds``).
    bound: int
    #: The limit's rate, hits/s, and the ns one token takes to refill (0: a limit of zero).
    rate_per_s: float
    token_ns: int
    #: ``(limit,)``: the limits of its instruction.
    limits: tuple[Limit, ...]
    #: The key as first reported (named in the hot keys when it is rejected).
    name: KeyCounts
    #: ``hash(key)``: two keys of a report sharing a counter send it the general way.
    uid: int


@dataclass(slots=True, eq=False)
class Plan:
    """A client's steady report resolved once, reused while it sends the same ids under the
    same policy with nothing interned since (:attr:`ClientKeys.plan`)."""

    ids: tuple[int, ...]
    policy: Matcher | None
    #: :attr:`ClientKeys.version` when it was made.
    version: int
    entries: list[Interned]
    keys: list[FastKey]
    refs: list[BucketRef]
    #: The smallest count bound of its keys: counts within it need no clamping.
    least: int


@dataclass(slots=True)
class Resolved:
    """A qualifying report's keys, resolved, counts clamped: aligned (the plan's lists)."""

    entries: Sequence[Interned]
    keys: Sequence[FastKey]
    refs: Sequence[BucketRef]
    #: Admitted hits to debit (clamped), and each key's demand (hits/s).
    hits: Sequence[int]
    rates: list[float]


#: A fast key costs a fraction of a general one (a sixth, measured: docs/benchmarks.md), so the
#: fast path walks chunks this many times ``chunk_keys`` long: still less time between two
#: pauses than the general path's chunks take.
CHUNK_SCALE = 4

_FAST = attrgetter("fast")
_POLICY = attrgetter("policy")
_BOUND = attrgetter("bound")
_REF = attrgetter("ref")
_UID = attrgetter("uid")


class FastReports:
    """The fast path of one :class:`~.report.ReportProcessor`; see the module docstring."""

    def __init__(
        self,
        store: MemoryStore,
        interning: Interning,
        demand: DemandBook[Counter],
        hot: HotKeys,
        chunks: Chunker,
        settings: ReportSettings,
        stats: StatsSink,
        debt: Callable[[Counter, str, int], int],
        gate: StoreGate | None = None,
    ) -> None:
        """``debt(counter, client, round_ns)``: the debt a debit may leave (the processor's);
        ``gate``: a cluster member's, whose slices every debit is charged to (``None``: the
        whole space is ours, nothing to note)."""
        self._store = store
        self._gate = gate
        self._debt = debt
        self._interning = interning
        self._demand = demand
        self._hot = hot
        self._chunks = chunks
        self._settings = settings
        self._stats = stats

    async def resolve(
        self, report: Report, policy: Matcher | None, interval: int
    ) -> Resolved | None:
        """``report``'s keys if it qualifies (clamps counted, as the general resolution counts
        them), else ``None`` having changed nothing the general path would not. A client
        reporting the ids of its last steady report again (the common case) reuses its
        :class:`Plan`; every other check is a pass in C over the report's arrays."""
        if report.keys or not report.known_ids:
            return None
        ids, admitted, rejected = report.known_ids, report.known_admitted, report.known_rejected
        most = self._settings.max_count
        top_admitted, top_rejected = max(admitted), max(rejected)
        if min(admitted) < 0 or top_admitted > most or min(rejected) < 0 or top_rejected > most:
            return None
        mine = self._interning.table.of(report.client_id)
        plan = mine.plan
        if (
            plan is None
            or plan.version != mine.version
            or plan.policy is not policy
            or plan.ids != ids
        ):
            plan = None
        if plan is None:
            plan = await self._plan(mine, ids, policy)
            if plan is None:
                return None
        if top_admitted > plan.least or top_rejected > plan.least:
            admitted, rejected = self._clamped(plan.keys, admitted, rejected)
        span = max(interval, 1_000_000)
        # (a + r) * NS_PER_SECOND / span per key, as KeyResolver.counted, in C
        rates = list(map(truediv, map(mul, map(add, admitted, rejected), repeat(NS_PER_SECOND)),
                         repeat(span)))  # fmt: skip
        return Resolved(plan.entries, plan.keys, plan.refs, admitted, rates)

    async def _plan(
        self, mine: ClientKeys, ids: Sequence[int], policy: Matcher | None
    ) -> Plan | None:
        """The plan of a report of ``ids`` by the client whose keys are ``mine`` (kept for its
        next), or ``None`` if it does not qualify."""
        version, n = mine.version, len(ids)
        entries = list(map(mine.get, ids))
        if not all(entries):  # a missing id (an entry is always true)
            return None
        found = cast(list[Interned], entries)  # no None: checked above
        keys: list[FastKey] = list(map(_FAST, found))
        if not all(keys) or not all(map(is_, map(_POLICY, keys), repeat(policy))):
            chunks = self._chunks
            for start, stop in chunks.spans(n, CHUNK_SCALE):
                for i in range(start, stop):
                    key = keys[i]
                    if key is None or key.policy is not policy:
                        made = self._build(found[i], policy)
                        if made is None:
                            return None
                        keys[i] = made
                await chunks.between(stop, n)
        if len(set(map(_UID, keys))) != n:
            return None
        least = min(map(_BOUND, keys))
        plan = Plan(tuple(ids), policy, version, found, keys, list(map(_REF, keys)), least)
        if mine.version == version:  # nothing interned meanwhile (a pause above)
            mine.plan = plan
        return plan

    def _clamped(
        self, keys: Sequence[FastKey], admitted: Sequence[int], rejected: Sequence[int]
    ) -> tuple[list[int], list[int]]:
        """The counts clamped to each key's bound, each clamp counted (``KeyResolver.counted``)."""
        hits: list[int] = []
        rest: list[int] = []
        for key, a, r in zip(keys, admitted, rejected, strict=True):
            bound = key.bound
            if a > bound or r > bound:
                self._stats.count(Event.REPORT_COUNT_CLAMPED)
                a, r = min(a, bound), min(r, bound)
            hits.append(a)
            rest.append(r)
        return hits, rest

    def _build(self, entry: Interned, policy: Matcher | None) -> FastKey | None:
        """``entry``'s :class:`FastKey` under ``policy`` (its shape resolved again if another
        was in force, as the general path does), or ``None`` if it does not qualify."""
        shape = entry.shape
        if shape.policy is not policy:
            shape = entry.shape = self._interning.resolver.shape(shape.key, policy)
        if shape.shadow or len(shape.counters) != 1:
            return None
        counter = shape.counters[0]
        ref = self._store.bucket_ref(counter)
        if ref is None:
            return None
        limit = counter.limit
        token_ns = -(-limit.period_ns // limit.amount) if limit.amount else 0
        fast = FastKey(policy, counter, None, ref, ref.period_ns, shape.bounds[0],
                       limit.rate_per_s, token_ns, (limit,), shape.key, hash(counter))  # fmt: skip
        entry.fast = fast
        return fast

    async def apply(
        self,
        client: str,
        keys: Resolved,
        scale: int,
        round_ns: int,
        omit: bool,
        valid_for: int,
        now: int,
    ) -> ReportAnswer:
        """Debit ``scale`` times the resolved hits, record the demand and answer, as the
        general path's ``_debit``, ``_record_demand``, ``_instruct`` and ``Interning.answer``
        do."""
        chunks, store, demand, debt = self._chunks, self._store, self._demand, self._debt
        fast, n = keys.keys, len(keys.keys)
        hits = keys.hits if scale == 1 else [h * scale for h in keys.hits]
        levels: list[int] = []
        created: dict[int, Outcome] = {}
        gate = self._gate
        for start, stop in chunks.spans(n, CHUNK_SCALE):

            def debt_of(i: int, start: int = start) -> int:
                return debt(fast[start + i].key, client, round_ns)

            if gate is not None:  # as the gate's debit would, before the store's
                gate.charge_each([k.key.key_hash for k in fast[start:stop]], hits[start:stop])
            held, new = store.debit_buckets(
                keys.refs[start:stop], hits[start:stop], debt_of, client, now
            )
            levels += held
            if new:
                created.update((start + i, outcome) for i, outcome in new.items())
            await chunks.between(stop, n)
        totals: list[float] = []
        for start, stop in chunks.spans(n, CHUNK_SCALE):
            totals += demand.record_each(
                client, fast[start:stop], keys.rates[start:stop], now, valid_for
            )
            await chunks.between(stop, n)
        changed: list[int] = []
        sent: list[Instruction] = []
        for start, stop in chunks.spans(n, CHUNK_SCALE):
            self._answer(keys, levels, created, totals, range(start, stop), omit, valid_for, now,
                         changed, sent)  # fmt: skip
            await chunks.between(stop, n)
        return ReportAnswer((), self._hot.current(now), tuple(changed), tuple(sent), valid_for)

    def _answer(
        self,
        keys: Resolved,
        levels: Sequence[int],
        created: dict[int, Outcome],
        totals: Sequence[float],
        span: range,
        omit: bool,
        valid_for: int,
        now: int,
        changed: list[int],
        sent: list[Instruction],
    ) -> None:
        """Work out the instructions of keys ``span`` from their buckets' ``levels`` (or the
        outcomes of those ``created``); append those to send (every one, or with ``omit`` those
        that changed) to ``changed`` and ``sent``, recording them as sent."""
        horizon = self._settings.surplus_horizon_ns
        note, ns, unbounded = self._hot.note, NS_PER_SECOND, UNBOUNDED
        entries, fast, rates = keys.entries, keys.keys, keys.rates
        for i in span:
            key = fast[i]
            level, period, rate = levels[i], key.period_ns, key.rate_per_s
            # instruct(..., repay_debt=True) for a token bucket
            if level >= period:  # tokens left (a bucket just created has no level here)
                reject = 0
                tokens = level // period * 1.0  # float(remaining), without the call
            else:
                _, remaining, reset, retry = (
                    created[i] if i in created else outcome_of(key.ref, level)
                )
                if remaining > 0:
                    reject = 0
                    tokens = float(remaining)
                else:
                    reject = valid_for if retry < 0 else retry
                    tokens = key.ref.capacity - reset * rate / ns
                    if not tokens < 0.0:  # min(0.0, tokens)
                        tokens = 0.0
                    if key.token_ns:  # until_repaid
                        reject = reject - key.token_ns if reject > key.token_ns else 0
            budget = rate + tokens * ns / horizon
            if not budget > 0.0:  # max(0.0, budget)
                budget = 0.0
            total = totals[i]
            admit = unbounded if total <= budget else budget * rates[i] / total
            entry = entries[i]
            last = entry.last
            if (
                omit
                and last is not None
                and reject == 0
                and admit == last.admit_rate
                and (last.limits is key.limits or last.limits == key.limits)
            ):
                continue  # as Interning.answer: the client keeps what it has
            answer = entry.last = Instruction(reject, admit, valid_for, key.limits)
            changed.append(i)
            sent.append(answer)
            if reject:
                note(key.name.domain, key.name.entries, reject, now)
