"""What the operator page remembers: limited keys with their recent past, reporting clients, RLS
rules over their limits. Pure (no IO, no clock: ``now`` is passed in) and bounded.

:class:`OperatorTap` is fed every applied report with its answer (:meth:`OperatorTap.observe`,
by :class:`~ratekeeper.server.operator_reports.ObservedReports`) and the RLS rule counts at each
sample (:meth:`OperatorTap.sample_rules`). It keeps

* **limited keys**: a key enters when an answer gives it a rejection period (the keys the report
  processor's hot-key broadcast, :mod:`ratekeeper.protocol.hot`, is made of) and from then on
  its admitted and rejected hits, as every client reports them, are summed per time bucket in a
  ring of ``points`` buckets of ``bucket_ns`` (five minutes by default), beside its policy. At
  most ``max_keys`` keys, the least recently rejected dropped first. A key interned by a client
  (reported by id, :mod:`ratekeeper.protocol.report_interned`) is named by the full report that
  interned it: the tap remembers at most ``max_names`` (client, id) names, oldest forgotten
  first; a key rejected under a forgotten id is counted as hot (by hash) but not named.
* **reporting clients**: per client id, its reports, keys and hits, at most ``max_clients``, the
  least recently reporting forgotten first.
* **RLS rules**: per ``(domain, stats key)`` the per-rule counts' growth per bucket for the rules
  that went over their limit, at most ``max_keys`` of them.

Its cost falls on report handling only with the page on (``--admin-listen``): a lookup per full
key of a report and a pass over the answer's changed instructions; known keys are looked up only
for a client that reports a limited key.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ratekeeper.core.instructions import Instruction
from ratekeeper.core.keys import Entries, canonical_bytes, key_hash
from ratekeeper.core.limits import NS_PER_SECOND, Limit
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import RuleCounts

__all__ = ["ClientSeen", "KeyName", "LimitedKey", "OperatorTap", "RuleSeen", "Series"]

#: A key's name: its domain and descriptor entries.
KeyName = tuple[str, Entries]


class Series:
    """Sums per time bucket, the last ``points`` buckets of ``bucket_ns`` each: a ring buffer."""

    __slots__ = ("_buckets", "bucket_ns", "points")

    def __init__(self, bucket_ns: int, points: int) -> None:
        self.bucket_ns = bucket_ns
        self.points = points
        #: ``[bucket index, first sum, second sum]``, oldest first.
        self._buckets: deque[list[int]] = deque(maxlen=points)

    def add(self, now: int, first: int, second: int = 0) -> None:
        """Add to the bucket ``now`` falls in."""
        index = now // self.bucket_ns
        buckets = self._buckets
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
        last = buckets[-1]
        last[1] += first
        last[2] += second

    def window(self, now: int) -> tuple[tuple[int, int, int], ...]:
        """Every bucket of the last ``points`` up to ``now``'s, oldest first, as ``(start ns,
        first sum, second sum)``; a bucket nothing was added to sums to zero."""
        current = now // self.bucket_ns
        first = current - self.points + 1
        held = {b[0]: b for b in self._buckets if first <= b[0] <= current}
        out = []
        for index in range(first, current + 1):
            b = held.get(index)
            out.append((index * self.bucket_ns, b[1] if b else 0, b[2] if b else 0))
        return tuple(out)

    def totals(self, now: int) -> tuple[int, int]:
        """Both sums over the window up to ``now``."""
        first = now // self.bucket_ns - self.points + 1
        kept = [b for b in self._buckets if b[0] >= first]
        return sum(b[1] for b in kept), sum(b[2] for b in kept)


@dataclass(slots=True)
class LimitedKey:
    """A key some answer gave a rejection period, and what was reported for it since."""

    domain: str
    entries: Entries
    #: The limits it is counted against (the last rejecting answer's).
    limits: tuple[Limit, ...]
    #: Admitted and rejected hits per bucket, all clients together.
    series: Series
    key_hash: int = 0
    #: When the last rejection period was given, and when it ends (server clock, ns).
    last_rejected_ns: int = 0
    reject_until_ns: int = 0
    #: Answers that gave it a rejection period.
    rejections: int = 0
    #: Dropped from the tap (client-id lookups to it are stale).
    dropped: bool = False

    def __post_init__(self) -> None:
        self.key_hash = key_hash(canonical_bytes(self.domain, self.entries))

    @property
    def policy_per_s(self) -> float:
        """The strictest of its limits, in hits per second (0 if it has none)."""
        return min((limit.rate_per_s for limit in self.limits), default=0.0)


@dataclass(slots=True)
class ClientSeen:
    """One reporting client."""

    client_id: str
    first_ns: int
    last_ns: int = 0
    reports: int = 0
    #: Keys in its last report (full and known).
    keys: int = 0
    #: Hits it reported over its reports.
    admitted: int = 0
    rejected: int = 0
    #: Keys of its last answer in a rejection period.
    rejecting: int = 0


@dataclass(slots=True)
class RuleSeen:
    """One RLS rule (stats key) that went over its limit: its counts' growth per bucket."""

    domain: str
    key: str
    #: Within-limit (first) and over-limit (second) hits per bucket.
    series: Series
    counts: RuleCounts = field(default_factory=RuleCounts)
    last_over_ns: int = 0


class OperatorTap:
    """Bounded memory of limited keys, clients and RLS rules; see the module docstring."""

    def __init__(
        self,
        *,
        max_keys: int = 64,
        max_clients: int = 256,
        max_names: int = 100_000,
        bucket_ns: int = 2 * NS_PER_SECOND,
        points: int = 150,
    ) -> None:
        self.max_keys, self.max_clients, self.max_names = max_keys, max_clients, max_names
        self.bucket_ns, self.points = bucket_ns, points
        #: Limited keys, least recently rejected first.
        self.keys: OrderedDict[KeyName, LimitedKey] = OrderedDict()
        #: Reporting clients, least recently reporting first.
        self.clients: OrderedDict[str, ClientSeen] = OrderedDict()
        #: RLS rules over their limits, least recently over first.
        self.rules: OrderedDict[tuple[str, ...], RuleSeen] = OrderedDict()
        #: The hot keys of the last answer: (key hash, ns left), and when it was sent.
        self.hot: tuple[tuple[int, int], ...] = ()
        self.hot_at_ns = 0
        #: (client, key id) → name of the keys clients interned, oldest first.
        self._names: OrderedDict[tuple[str, int], KeyName] = OrderedDict()
        #: Per client: its key ids that name limited keys.
        self._watch: dict[str, dict[int, LimitedKey]] = {}
        #: Each rule's counts at the last sample: (within, over).
        self._rule_totals: dict[tuple[str, ...], tuple[int, int]] = {}

    # --- reports --------------------------------------------------------------------------

    def observe(
        self, report: Report, full: Sequence[KeyCounts | None], answer: ReportAnswer, now: int
    ) -> None:
        """An applied ``report`` (its full keys as the processor read them, aligned with
        ``answer.instructions``) and its ``answer``, at ``now``."""
        client = report.client_id
        seen = self._client(client, now)
        seen.reports += 1
        seen.keys = len(full) + len(report.known_ids)
        admitted, rejected = sum(report.known_admitted), sum(report.known_rejected)
        rejecting = 0
        for key, instruction in zip(full, answer.instructions, strict=False):
            if key is None:
                continue
            admitted += key.admitted
            rejected += key.rejected
            name = (key.domain, key.entries)
            if key.key_id:
                self._name(client, key.key_id, name)
            limited = self.keys.get(name)
            if instruction.reject_for_ns:
                rejecting += 1
                limited = self._limited(name, instruction, now)
            if limited is not None:
                limited.series.add(now, key.admitted, key.rejected)
                if key.key_id:
                    self._watch_id(client, key.key_id, limited)
        rejecting += self._known(report, answer, now)
        seen.admitted += admitted
        seen.rejected += rejected
        seen.rejecting = rejecting
        self.hot, self.hot_at_ns = answer.hot, now

    def _known(self, report: Report, answer: ReportAnswer, now: int) -> int:
        """Limited keys among the report's known keys; how many the answer rejects."""
        client, ids = report.client_id, report.known_ids
        rejecting = 0
        for index, instruction in zip(answer.changed, answer.changed_instructions, strict=True):
            if instruction.reject_for_ns:
                rejecting += 1
                name = self._names.get((client, ids[index]))
                if name is not None:
                    self._watch_id(client, ids[index], self._limited(name, instruction, now))
        watched = self._watch.get(client)
        if watched:
            where = dict(zip(ids, range(len(ids)), strict=True))
            for key_id, limited in list(watched.items()):
                if limited.dropped:
                    del watched[key_id]
                    continue
                i = where.get(key_id)
                if i is not None:
                    limited.series.add(now, report.known_admitted[i], report.known_rejected[i])
        return rejecting

    def _limited(self, name: KeyName, instruction: Instruction, now: int) -> LimitedKey:
        """``name``'s record, made or moved to the most recently rejected end."""
        limited = self.keys.get(name)
        if limited is None:
            series = Series(self.bucket_ns, self.points)
            limited = self.keys[name] = LimitedKey(name[0], name[1], instruction.limits, series)
            if len(self.keys) > self.max_keys:
                _, gone = self.keys.popitem(last=False)
                gone.dropped = True
        else:
            self.keys.move_to_end(name)
        if instruction.limits:
            limited.limits = instruction.limits
        limited.rejections += 1
        limited.last_rejected_ns = now
        limited.reject_until_ns = now + instruction.reject_for_ns
        return limited

    def _watch_id(self, client: str, key_id: int, limited: LimitedKey) -> None:
        """Count ``client``'s known key ``key_id`` to ``limited`` from now on: at most
        ``max_keys`` ids per client (ids of dropped keys are let go first)."""
        watched = self._watch.setdefault(client, {})
        if key_id not in watched and len(watched) >= self.max_keys:
            for stale in [i for i, k in watched.items() if k.dropped]:
                del watched[stale]
            if len(watched) >= self.max_keys:
                return
        watched[key_id] = limited

    def _client(self, client: str, now: int) -> ClientSeen:
        seen = self.clients.pop(client, None)
        if seen is None:
            seen = ClientSeen(client, now)
            if len(self.clients) >= self.max_clients:
                gone, _ = self.clients.popitem(last=False)
                self._watch.pop(gone, None)
        seen.last_ns = now
        self.clients[client] = seen
        return seen

    def _name(self, client: str, key_id: int, name: KeyName) -> None:
        names = self._names
        names[(client, key_id)] = name
        if len(names) > self.max_names:
            names.popitem(last=False)

    # --- RLS ------------------------------------------------------------------------------

    def sample_rules(self, rules: Mapping[tuple[str, ...], RuleCounts], now: int) -> None:
        """The per-rule counts at ``now``: each rule's growth since the last sample is added to
        its series once it has gone over its limit."""
        totals = self._rule_totals
        for labels, counts in list(rules.items()):
            within, over = counts.within_limit, counts.over_limit
            before = totals.get(labels)
            totals[labels] = (within, over)
            seen = self.rules.get(labels)
            if seen is None:
                if over == 0:
                    continue
                seen = self.rules[labels] = RuleSeen(
                    labels[0], labels[1], Series(self.bucket_ns, self.points)
                )
                if len(self.rules) > self.max_keys:
                    self.rules.popitem(last=False)
            seen.counts = counts
            grew_within = within - before[0] if before else within
            grew_over = over - before[1] if before else over
            seen.series.add(now, grew_within, grew_over)
            if grew_over > 0:
                seen.last_over_ns = now
                self.rules.move_to_end(labels)
