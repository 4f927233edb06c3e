"""RLQS quota assignments: usage reports in, bucket actions out, no transport.

Envoy's ``rate_limit_quota`` filter (and proxyless gRPC, gRFC A77) opens one stream per
(server, domain), reports every bucket's usage every reporting interval, and enforces what the
server assigns. :class:`RlqsQuotas` is the server side of that, for every stream at once:

* a bucket is resolved once, on its first report (a subscription), to the counters of the rule
  it names (:mod:`~ratekeeper.protocol.rlqs_match`); a bucket no rule matches (or a
  whitelisted or ``unlimited`` one) is answered ``ALLOW_ALL`` and counted nowhere, and a rule in
  shadow mode is counted but answered ``ALLOW_ALL``;
* each report's admitted requests are debited from those counters through the
  :class:`~ratekeeper.protocol.ownership.StoreGate`, in one store call: the same counters every
  other API (RLS, batch reports) counts, so all of them share one limit. Between reports each
  subscription is debited ahead at the pace it is expected to admit, and its report settles
  the rest (:meth:`RlqsQuotas.refresh`);
* each bucket is answered with its assignment (:mod:`~ratekeeper.protocol.rlqs_sizing`): this
  Envoy's equal share among every stream subscribed to the counter, ``DENY_ALL`` while the
  counter has nothing to admit; a bucket with no request for a few reports in a row is
  abandoned;
* when a counter's sharers change (a subscription, an abandon, a stream closed) or a denial's
  counter has refilled, the other streams' assignments are due again: :meth:`due` says when (so
  does the next debit ahead) and :meth:`refresh` returns the
  :class:`~ratekeeper.protocol.rlqs_values.Push` es that changed, which the servicer sends
  unasked.

``time_elapsed`` is never validated (Envoy 1.40 sends 0 on a bucket's first report).
Raises :class:`~ratekeeper.errors.RequestError` for a malformed report and the store's
:class:`~ratekeeper.errors.BackendError` when it fails. Event loop only: single writer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from ratekeeper.backends.store import Counter, Hit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import RequestError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.rlqs_match import match_bucket
from ratekeeper.protocol.rlqs_sizing import Assignment, RlqsSettings, assign, strictest
from ratekeeper.protocol.rlqs_values import (
    Blanket,
    BucketAction,
    BucketKey,
    BucketUsage,
    Push,
    TokenBucket,
    Usage,
)

__all__ = ["DEFAULT_SETTINGS", "RlqsQuotas", "RlqsSettings"]

#: The settings of a server that sets none.
DEFAULT_SETTINGS = RlqsSettings()

#: One subscription: (stream, domain, bucket).
_SubKey = tuple[int, str, BucketKey]


class _Mode(enum.Enum):
    """How a bucket is answered."""

    #: Counted and enforced.
    ENFORCED = "enforced"
    #: Counted, answered ALLOW_ALL (a shadow-mode rule).
    SHADOW = "shadow"
    #: Not counted, answered ALLOW_ALL (no rule, whitelisted, unlimited).
    FREE = "free"


@dataclass(slots=True)
class _Sub:
    """One stream's subscription to one bucket (mutable: a passive machine's own state)."""

    counters: tuple[Counter, ...]
    mode: _Mode
    #: The policy the counters were resolved against (a reload resolves them again).
    policy: object
    #: Reports in a row with no request.
    idle: int = 0
    #: The action last sent, so a refresh pushes only what changed.
    last: BucketAction | None = None
    #: When its last report was applied (server clock, ns; 0: never).
    reported_at: int = 0
    #: Requests per ns it offered over its last report interval (allowed + denied); unknown
    #: (infinite) until its second report: a new subscriber is expected to use its share.
    demand: float = math.inf
    #: Requests per ns it is expected to admit now: debited ahead of its report (see
    #: :meth:`RlqsQuotas.refresh`).
    pace: float = 0.0
    #: Hits debited ahead since its last report, the fraction of one not yet debited, and when
    #: the pace was last debited.
    debited: int = 0
    carry: float = 0.0
    paced_at: int = 0


class RlqsQuotas:
    """Every RLQS stream's subscriptions and assignments; see the module docstring."""

    def __init__(
        self,
        store: StoreGate,
        policies: Callable[[], Matcher | None],
        settings: RlqsSettings = DEFAULT_SETTINGS,
    ) -> None:
        """``policies`` returns the policy in force (``None``: no configured rules)."""
        self._store = store
        self._policies = policies
        self._settings = settings
        self._streams: dict[int, dict[tuple[str, BucketKey], _Sub]] = {}
        self._sharers: dict[Counter, set[_SubKey]] = {}
        #: Counters whose sharers' assignments are due again, and when (ns).
        self._due: dict[Counter, int] = {}
        self._next_stream = 0
        self._paced_until = 0

    def open_stream(self) -> int:
        """A new stream's id (one per Envoy connection, reconnects included)."""
        self._next_stream += 1
        self._streams[self._next_stream] = {}
        return self._next_stream

    def close_stream(self, stream: int, now: int) -> None:
        """Forget ``stream``'s subscriptions; the streams sharing its counters get more."""
        for (domain, bucket), sub in self._streams.pop(stream, {}).items():
            self._unshare((stream, domain, bucket), sub, now)

    def sharers(self, counter: Counter) -> int:
        """How many subscriptions share ``counter`` now."""
        return len(self._sharers.get(counter, ()))

    def debited_ahead(self, stream: int, domain: str, bucket: BucketKey) -> int:
        """Hits debited ahead for a subscription since its last report (0: none or no such)."""
        sub = self._streams.get(stream, {}).get((domain, bucket))
        return 0 if sub is None else sub.debited

    def due(self) -> int | None:
        """When :meth:`refresh` must run next (ns since the epoch), or ``None``."""
        due = min(self._due.values(), default=None)
        if self._pacing():
            return self._paced_until if due is None else min(due, self._paced_until)
        return due

    def _pacing(self) -> bool:
        return any(sub.pace > 0.0 for subs in self._streams.values() for sub in subs.values())

    async def report(self, stream: int, usage: Usage, now: int) -> tuple[BucketAction, ...]:
        """Apply ``stream``'s ``usage`` at ``now`` and answer each of its buckets."""
        subs = self._streams.get(stream)
        if subs is None:
            raise RequestError(f"stream {stream} is not open")
        s = self._settings
        domain = usage.domain
        if not 0 < len(domain) <= s.max_text:
            raise RequestError(f"domain must have 1..{s.max_text} characters")
        policy = self._policies()
        resolved = [self._subscribe(stream, subs, domain, u, policy, now) for u in usage.usages]
        hits = [
            Hit(c, max(0, u.allowed - sub.debited))  # the rest was debited ahead
            for u, sub in zip(usage.usages, resolved, strict=True)
            if sub is not None and sub.mode is not _Mode.FREE
            for c in sub.counters
        ]
        outcomes = await self._store.debit(hits, now) if hits else []
        state = dict(zip((h.counter for h in hits), outcomes, strict=True))
        actions = []
        for u, sub in zip(usage.usages, resolved, strict=True):
            if sub is None:
                actions.append(BucketAction(u.bucket, None))
                continue
            if sub.reported_at:
                # Envoy's own interval when it is longer: reports queued behind a stalled server
                # arrive back to back, and would otherwise measure an infinite demand.
                span = max(now - sub.reported_at, u.elapsed_ns, 1)
                sub.demand = (u.allowed + u.denied) / span
            sub.reported_at, sub.debited, sub.carry = now, 0, 0.0
            actions.append(self._answer(u.bucket, sub, state, now))
        return tuple(actions)

    async def refresh(self, now: int) -> list[Push]:
        """Debit ahead what is due, and return the assignments due by ``now`` that changed,
        per stream and domain."""
        paced = self._pace_hits(now)
        counters = [c for c, at in self._due.items() if at <= now]
        for counter in counters:
            del self._due[counter]
        counters = [c for c in counters if self._sharers.get(c)]
        hits = [*paced, *(Hit(c, 0) for c in counters)]
        if not hits:
            return []
        outcomes = await self._store.debit(hits, now)
        state = dict(zip((h.counter for h in hits), outcomes, strict=True))
        if not counters:
            return []
        changed: dict[tuple[int, str], list[BucketAction]] = {}
        for key in {k for c in counters for k in self._sharers[c]}:
            stream, domain, bucket = key
            sub = self._streams[stream][domain, bucket]
            if any(c not in state for c in sub.counters):
                state.update(await self._peek([c for c in sub.counters if c not in state], now))
            before = sub.last
            action = self._answer(bucket, sub, state, now)
            if _material(before, action):
                changed.setdefault((stream, domain), []).append(action)
        return [Push(stream, domain, tuple(a)) for (stream, domain), a in sorted(changed.items())]

    def _pace_hits(self, now: int) -> list[Hit]:
        """Each paced subscription's admissions since it was last paced, as hits.

        Envoy reports only every few seconds; debited then, a whole interval's admissions would
        meet a counter whose refill stopped at its capacity meanwhile, and the counter would
        show a debt the Envoys never ran up. So each subscription is debited ahead at the pace
        it is expected to admit (its demand, at most its assignment's rate), and its report
        settles the rest (admissions beyond what was debited ahead; none is handed back).
        """
        if now < self._paced_until:
            return []
        interval = self._settings.pace_interval_ns
        self._paced_until = now + interval
        hits: list[Hit] = []
        for subs in self._streams.values():
            for sub in subs.values():
                if sub.pace <= 0.0 or now <= sub.paced_at:
                    continue
                # A forecast, never a debt: a late step (the server stalled, a busy loop) covers
                # one interval, not the whole gap, and no step takes over half of a sharer's
                # part of the capacity, so forecasts alone leave every counter with tokens (a
                # counter's refill stops at its capacity: five seconds of a full-rate forecast
                # debited at once after a stall put a 1,000,000/s rule 4,000,000 in debt and
                # answered DENY_ALL to a bucket admitting a few hundred). What Envoy really
                # admitted beyond the forecast its report settles.
                owed = sub.pace * min(now - sub.paced_at, interval) + sub.carry
                owed = min(owed, self._forecast_cap(sub))
                whole = int(owed + 1e-9)  # a rate's float error must not lose a hit
                sub.carry, sub.paced_at = max(0.0, owed - whole), now
                if whole:
                    sub.debited += whole
                    hits.extend(Hit(c, whole) for c in sub.counters)
        return hits

    def _forecast_cap(self, sub: _Sub) -> float:
        """The most one pace step may debit ahead for ``sub``: half its share of the smallest
        capacity among its counters (never binding for a rule without a burst below its
        amount: its share's rate over one step is at most a quarter of that)."""
        return min(
            (c.limit.capacity / (2 * max(self.sharers(c), 1)) for c in sub.counters), default=0.0
        )

    async def _peek(self, counters: list[Counter], now: int) -> dict[Counter, Outcome]:
        outcomes = await self._store.debit([Hit(c, 0) for c in counters], now)
        return dict(zip(counters, outcomes, strict=True))

    def _subscribe(
        self,
        stream: int,
        subs: dict[tuple[str, BucketKey], _Sub],
        domain: str,
        usage: BucketUsage,
        policy: Matcher | None,
        now: int,
    ) -> _Sub | None:
        """The bucket's subscription (made on first sight); ``None`` once it is abandoned."""
        key = (stream, domain, usage.bucket)
        sub = subs.get((domain, usage.bucket))
        if sub is not None and sub.policy is not policy:  # a reload: resolve it again
            self._unshare(key, subs.pop((domain, usage.bucket)), now)
            sub = None
        if sub is None:
            self._check(usage.bucket, len(subs))
            sub = self._resolve(domain, usage.bucket, policy)
            subs[domain, usage.bucket] = sub
            for counter in sub.counters:
                sharers = self._sharers.setdefault(counter, set())
                if sharers:
                    self._due[counter] = now  # the others' shares shrink
                sharers.add(key)
        sub.idle = 0 if usage.allowed or usage.denied else sub.idle + 1
        if sub.idle >= self._settings.idle_reports:
            self._unshare(key, subs.pop((domain, usage.bucket)), now)
            return None
        return sub

    def _check(self, bucket: BucketKey, held: int) -> None:
        s = self._settings
        if held >= s.max_buckets:
            raise RequestError(f"more than {s.max_buckets} buckets on one stream")
        if len(bucket) > s.max_entries:
            raise RequestError(f"bucket id with more than {s.max_entries} keys")
        if any(len(k) > s.max_text or len(v) > s.max_text for k, v in bucket):
            raise RequestError(f"bucket id key or value longer than {s.max_text} characters")

    def _resolve(self, domain: str, bucket: BucketKey, policy: Matcher | None) -> _Sub:
        match = match_bucket(policy, domain, bucket) if policy is not None else None
        if match is None or match.rule.unlimited or match.rule.whitelisted:
            return _Sub((), _Mode.FREE, policy)
        rule = match.rule
        counters = tuple(Counter(domain, match.counter_entries, lim) for lim in rule.limits)
        return _Sub(counters, _Mode.SHADOW if rule.shadow_mode else _Mode.ENFORCED, policy)

    def _unshare(self, key: _SubKey, sub: _Sub, now: int) -> None:
        for counter in sub.counters:
            sharers = self._sharers.get(counter)
            if sharers is None:
                continue
            sharers.discard(key)
            if sharers:
                self._due[counter] = now  # the others' shares grow
            else:
                del self._sharers[counter]
                self._due.pop(counter, None)

    def _answer(
        self, bucket: BucketKey, sub: _Sub, state: dict[Counter, Outcome], now: int
    ) -> BucketAction:
        s = self._settings
        if sub.mode is not _Mode.ENFORCED:
            action = BucketAction(bucket, Blanket.ALLOW_ALL, s.ttl_ns)
        else:
            chosen = strictest([self._assign(c, state[c]) for c in sub.counters], s)
            if chosen.recheck_ns is not None:
                for counter in sub.counters:
                    at = now + chosen.recheck_ns
                    self._due[counter] = min(self._due.get(counter, at), at)
            action = BucketAction(bucket, chosen.strategy, chosen.ttl_ns)
        sub.last = action
        self._set_pace(sub, now)
        return action

    def _set_pace(self, sub: _Sub, now: int) -> None:
        """The pace ``sub`` is debited ahead at under its current action."""
        strategy = sub.last.strategy if sub.last is not None else None
        if sub.mode is _Mode.FREE or strategy is Blanket.DENY_ALL or strategy is None:
            pace = 0.0
        elif isinstance(strategy, TokenBucket):
            pace = min(sub.demand, strategy.tokens_per_fill / strategy.fill_interval_ns)
        else:
            pace = sub.demand if math.isfinite(sub.demand) else 0.0  # shadow: admits all
        if pace > 0.0 and sub.pace <= 0.0:
            sub.paced_at = now
        sub.pace = pace

    def _assign(self, counter: Counter, state: Outcome) -> Assignment:
        return assign(state, counter.limit, self.sharers(counter), self._settings)


def _material(before: BucketAction | None, after: BucketAction) -> bool:
    """Whether ``after`` is worth pushing over ``before``: another kind of strategy, another
    refill rate, or a denial (each renews its TTL: the denial ``before`` may run out before the
    counter is repaid). A bucket size that only drifted with the counter's refill waits for the
    next report's answer."""
    if before is None or after.strategy is Blanket.DENY_ALL:
        return True
    old, new = before.strategy, after.strategy
    if isinstance(old, TokenBucket) and isinstance(new, TokenBucket):
        return (old.tokens_per_fill, old.fill_interval_ns) != (
            new.tokens_per_fill,
            new.fill_interval_ns,
        )
    return old != new
