"""An RLS request's plan: everything its answer needs that does not depend on counter state.

A request is planned on its first sight: validated, each descriptor matched (or its
``RateLimitOverride`` turned into a limit), ``hits_addend`` resolved (the descriptor's own, else
the request's, else 1), ``replaces`` and whitelists applied, and the constant parts of each
status encoded (:mod:`ratekeeper.protocol.rls_wire`). The decider caches the plan by the
request's bytes, so a request seen before is neither parsed nor matched again.

Plan records read on every call are slotted dataclasses, not frozen (a frozen ``__init__``
makes one ``object.__setattr__`` call per field) and not named tuples (slot reads are faster
than a named tuple's field getters); nothing mutates them once built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse

from ratekeeper.backends.store import Counter, Hit
from ratekeeper.config.model import RateLimitRule
from ratekeeper.core.keys import Entries, descriptor_path
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import RequestError
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.policy import Policy
from ratekeeper.protocol.stats import RuleCounts, StatsSink, Tally

__all__ = [
    "MAX_DESCRIPTORS",
    "MAX_DESCRIPTOR_BYTES",
    "STATUS_OK",
    "STATUS_UNLIMITED",
    "Counted",
    "Forwarded",
    "LimitAnswer",
    "Planner",
    "RequestPlan",
]

_RL = RateLimitResponse.RateLimit
_UNIT_TO_PROTO: dict[Unit, int] = {
    Unit.SECOND: _RL.SECOND, Unit.MINUTE: _RL.MINUTE, Unit.HOUR: _RL.HOUR, Unit.DAY: _RL.DAY,
    Unit.WEEK: _RL.WEEK, Unit.MONTH: _RL.MONTH, Unit.YEAR: _RL.YEAR,
}  # fmt: skip
_UNIT_FROM_PROTO = {proto: unit for unit, proto in _UNIT_TO_PROTO.items()}
#: ``limit_remaining`` of an ``unlimited`` rule, as the reference reports it.
_UNLIMITED_REMAINING = 2**32 - 1
#: Largest descriptor accepted (its encoded size): counters keep their keys, so this and the
#: store's key cap bound the memory a client can make the server hold.
MAX_DESCRIPTOR_BYTES = 4096
#: Most descriptors in one request (Envoy sends a handful): bounds the work one call can demand.
MAX_DESCRIPTORS = 1024
#: Longest domain, descriptor key or value (characters) by default: a request with a longer one
#: is refused at first sight, so client text is never kept (plans, counters, metric labels).
MAX_TEXT = 1024
#: Distinct rule limits whose statuses are remembered; the memo starts over when full.
_MAX_LIMIT_ANSWERS = 16_384

#: The status of a descriptor that counts nothing: unmatched, whitelisted or replaced.
STATUS_OK = rls_wire.status_code_only(rls_wire.OK)
#: The status of a descriptor under an ``unlimited`` rule.
STATUS_UNLIMITED = rls_wire.status_code_only(rls_wire.OK, _UNLIMITED_REMAINING)


@dataclass(slots=True)
class LimitAnswer:
    """One limit of a rule as a status reports it; the same for every key under the rule."""

    limit: Limit
    #: The status's encoded ``current_limit`` field.
    field: bytes
    #: A hit that leaves more than this used counts as near the limit.
    near: int


@dataclass(slots=True)
class Counted:
    """A descriptor whose answer depends on its counters: everything but their outcomes."""

    #: Hits it adds (its resolved ``hits_addend``).
    hits: int
    #: Its rule's counts, added to on every call.
    counts: RuleCounts
    #: One per counter, aligned with the store's outcomes; empty for an ``unlimited`` rule.
    limits: tuple[LimitAnswer, ...]
    #: The store hits it makes, one per limit.
    counted: tuple[Hit, ...]
    #: Its rule is in shadow mode: over is answered OK.
    shadow: bool
    #: It is a quota descriptor (its rule's or the global quota mode).
    quota: bool


@dataclass(slots=True)
class Forwarded:
    """A counted descriptor its owner (another cluster member) answered: its status as sent."""

    #: The encoded ``statuses`` entry.
    field: bytes
    #: Its status code.
    code: int
    #: It is a quota descriptor (as :attr:`Counted.quota`).
    quota: bool
    #: What the ``RateLimit-*`` headers would show of it; ``None``: no limit (or no answer).
    shown: tuple[Limit, Outcome] | None


@dataclass(slots=True)
class RequestPlan:
    """Everything a request's answer needs that does not depend on the counters' state."""

    #: One answer per descriptor, aligned with the request: a fixed encoded status, or counted.
    answers: tuple[bytes | Counted, ...]
    #: The store hits of every counted descriptor, in order.
    hits: tuple[Hit, ...]
    #: The count of a domain no config defines, else ``None``.
    unknown_domain: Tally | None = None
    #: Planned for a cluster: each counted descriptor encoded with its ``hits_addend`` resolved,
    #: as its owner is sent it (``b""`` for the others); empty when not planned for a cluster.
    wires: tuple[bytes, ...] = ()


class _Matched(NamedTuple):
    """One descriptor's matched rule, and what names its counters and stats (planning only)."""

    rule: RateLimitRule
    entries: Entries
    stats_key: str
    hits: int


class Planner:
    """Plans requests against one policy (a reload makes a new planner)."""

    def __init__(
        self,
        policy: Policy,
        stats: StatsSink,
        *,
        near_limit_ratio: float,
        override_algorithm: Algorithm,
        quota_mode: bool,
        forwarding: bool = False,
        max_text: int = MAX_TEXT,
    ) -> None:
        self._policy = policy
        #: Plans carry :attr:`RequestPlan.wires` (a cluster member may forward descriptors).
        self._forwarding = forwarding
        self._max_text = max_text
        self._known_domains = frozenset(policy.domains)
        self._stats = stats
        self._near_limit_ratio = near_limit_ratio
        self._override_algorithm = override_algorithm
        self._quota_mode = quota_mode
        self._limit_answers: dict[tuple[str | None, tuple[Limit, ...]], tuple[LimitAnswer, ...]]
        self._limit_answers = {}

    def plan(self, request: RateLimitRequest, size: int) -> RequestPlan:
        """Validate ``request`` (``size`` bytes encoded) and plan its answer.

        Raises :class:`~ratekeeper.errors.RequestError` naming what is malformed.
        """
        domain = request.domain
        descriptors = request.descriptors
        if not domain:
            raise RequestError("rate limit domain must not be empty")
        if not descriptors:
            raise RequestError("rate limit descriptor list must not be empty")
        if len(descriptors) > MAX_DESCRIPTORS:
            raise RequestError(f"more than {MAX_DESCRIPTORS} descriptors in one request")
        # No text is longer than the request: most requests need no text check.
        long_text = size > self._max_text
        if long_text and len(domain) > self._max_text:
            raise RequestError(f"rate limit domain longer than {self._max_text} characters")
        known = domain in self._known_domains
        default_hits = request.hits_addend or 1
        matched = []
        for index, descriptor in enumerate(descriptors):
            # No descriptor is larger than the request: most requests need no size check.
            if size > MAX_DESCRIPTOR_BYTES and descriptor.ByteSize() > MAX_DESCRIPTOR_BYTES:
                raise RequestError(f"descriptor {index}: larger than {MAX_DESCRIPTOR_BYTES} bytes")
            if long_text:
                self._check_text(index, descriptor)
            if known:
                matched.append(self._match(index, domain, descriptor, default_hits))
        if not known:
            # As the reference does: OK with no limit, overrides included, and counted.
            unknown = self._stats.unknown_domain(domain)
            return RequestPlan((STATUS_OK,) * len(descriptors), (), unknown)
        replaced = {name for m in matched if m is not None for name in m.rule.replaces}
        answers: list[bytes | Counted] = []
        hits: list[Hit] = []
        for m in matched:
            if m is None or m.rule.name in replaced or m.rule.whitelisted:
                answers.append(STATUS_OK)
            else:
                counted = self._counted(domain, m)
                answers.append(counted)
                hits.extend(counted.counted)
        if self._forwarding:
            wires = _wires(descriptors, matched, answers)
            return RequestPlan(tuple(answers), tuple(hits), None, wires)
        return RequestPlan(tuple(answers), tuple(hits))

    def _check_text(self, index: int, descriptor: Any) -> None:
        bound = self._max_text
        for entry in descriptor.entries:
            if len(entry.key) > bound or len(entry.value) > bound:
                raise RequestError(
                    f"descriptor {index}: entry key or value longer than {bound} characters"
                )

    def _match(
        self, index: int, domain: str, descriptor: Any, default_hits: int
    ) -> _Matched | None:
        entries = tuple([(entry.key, entry.value) for entry in descriptor.entries])
        has_own = descriptor.HasField("hits_addend")
        hits = descriptor.hits_addend.value if has_own else default_hits
        if descriptor.HasField("limit"):
            return self._override(index, domain, entries, descriptor.limit, hits)
        match = self._policy.match(domain, entries)
        if match is None:
            return None
        return _Matched(match.rule, match.counter_entries, match.stats_key, hits)

    def _override(
        self, index: int, domain: str, entries: Entries, override: Any, hits: int
    ) -> _Matched:
        """A ``RateLimitOverride``: its limit, keyed by the full entries path."""
        unit = _UNIT_FROM_PROTO.get(override.unit)
        if unit is None:
            raise RequestError(f"descriptor {index}: limit override has no valid unit")
        limit = Limit(override.requests_per_unit, unit, algorithm=self._override_algorithm)
        key = descriptor_path(domain, entries)
        return _Matched(RateLimitRule(domain, key, (limit,)), entries, key, hits)

    def _counted(self, domain: str, matched: _Matched) -> Counted:
        rule, hits, entries = matched.rule, matched.hits, matched.entries
        counted = (
            ()
            if rule.unlimited
            else tuple([Hit(Counter(domain, entries, limit), hits) for limit in rule.limits])
        )
        return Counted(
            hits,
            self._stats.rule(domain, matched.stats_key),
            () if rule.unlimited else self._answers_of(rule),
            counted,
            rule.shadow_mode,
            rule.quota_mode or self._quota_mode,
        )

    def _answers_of(self, rule: RateLimitRule) -> tuple[LimitAnswer, ...]:
        """How ``rule``'s limits appear in statuses; remembered, as many keys share a rule."""
        key = (rule.name, rule.limits)
        answers = self._limit_answers.get(key)
        if answers is None:
            ratio = self._near_limit_ratio
            name = rule.name or ""
            answers = tuple(
                LimitAnswer(
                    limit,
                    rls_wire.current_limit(limit.amount, _UNIT_TO_PROTO[limit.unit], name),
                    int(limit.amount * ratio),
                )
                for limit in rule.limits
            )
            if len(self._limit_answers) >= _MAX_LIMIT_ANSWERS:  # overrides bring their own
                self._limit_answers.clear()
            self._limit_answers[key] = answers
        return answers


def _wires(
    descriptors: Any, matched: list[_Matched | None], answers: list[bytes | Counted]
) -> tuple[bytes, ...]:
    """Each counted descriptor as its owner is sent it: its own ``hits_addend`` set to the hits
    it was planned with, so the owner counts the same whatever the request's default."""
    wires = []
    for descriptor, m, answer in zip(descriptors, matched, answers, strict=True):
        if m is None or isinstance(answer, bytes):
            wires.append(b"")
            continue
        copy = type(descriptor)()
        copy.CopyFrom(descriptor)
        copy.hits_addend.value = m.hits
        copy.hits_addend.SetInParent()
        wires.append(copy.SerializeToString())
    return tuple(wires)
