"""Envoy RLS decisions: a ``RateLimitRequest`` in, a ``RateLimitResponse`` out.

Transport-free: the gRPC servicer and ``POST /json`` both call
:meth:`RateLimitService.should_rate_limit`. One request makes exactly one store call carrying
every counter it touches. The semantics follow envoyproxy/ratelimit (see
``docs/operations.md``): per-descriptor statuses aligned with the request, ``overall_code`` the
OR of non-shadow descriptors, ``hits_addend`` precedence, ``unlimited``, whitelists,
``replaces``, rule and global shadow mode, ``RateLimitOverride`` and ``RateLimit-*`` headers.
Our extension: a rule with several limits is over if any limit is, and reports the most
restrictive one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf.message import DecodeError

from ratekeeper.backends.store import Counter, Hit, Store
from ratekeeper.config.model import RateLimitRule
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, RequestError
from ratekeeper.server import rls_wire
from ratekeeper.server.metrics import Column, Metrics
from ratekeeper.server.reload import PolicyHolder

__all__ = ["RateLimitService", "RlsSettings"]

log = logging.getLogger(__name__)

_RL = RateLimitResponse.RateLimit
_UNIT_TO_PROTO: dict[Unit, int] = {
    Unit.SECOND: _RL.SECOND, Unit.MINUTE: _RL.MINUTE, Unit.HOUR: _RL.HOUR, Unit.DAY: _RL.DAY,
    Unit.WEEK: _RL.WEEK, Unit.MONTH: _RL.MONTH, Unit.YEAR: _RL.YEAR,
}  # fmt: skip
_UNIT_FROM_PROTO = {proto: unit for unit, proto in _UNIT_TO_PROTO.items()}
_OK: int = RateLimitResponse.OK
_OVER: int = RateLimitResponse.OVER_LIMIT
#: ``limit_remaining`` of an ``unlimited`` rule, as the reference reports it.
_UNLIMITED_REMAINING = 2**32 - 1
#: Largest descriptor accepted (its encoded size): counters keep their keys, so this and the
#: store's key cap bound the memory a client can make the server hold.
MAX_DESCRIPTOR_BYTES = 4096
#: Most descriptors in one request (Envoy sends a handful): bounds the work one call can demand.
MAX_DESCRIPTORS = 1024
#: Request plans remembered per policy (see ``RateLimitService._plan_cache``); the cache starts
#: over when full. With requests cached only up to ``_MAX_CACHED_BYTES``, it holds ~16 MB at most.
_MAX_PLANS = 16_384
_MAX_CACHED_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RlsSettings:
    """How decisions are shaped; set once from the server settings."""

    #: Global shadow mode: an over-limit descriptor is answered OK (and counted).
    shadow_mode: bool = False
    #: Hits past ``floor(amount × ratio)`` count as near_limit.
    near_limit_ratio: float = 0.8
    #: On a store error answer OVER_LIMIT (True) or OK (False, fail open).
    fail_closed: bool = False
    #: Names of the limit, remaining and reset headers; ``None``: no headers.
    headers: tuple[str, str, str] | None = None
    #: Algorithm of ``RateLimitOverride`` limits sent by Envoy.
    override_algorithm: Algorithm = Algorithm.TOKEN_BUCKET
    #: Global quota mode: every limited descriptor is a quota descriptor (see ``_respond``).
    quota_mode: bool = False


# Plan records are built on a request's first sight. Those read on every call after are
# slotted dataclasses, not frozen (a frozen __init__ makes one object.__setattr__ call per
# field) and not named tuples (slot reads are faster than a named tuple's field getters);
# nothing mutates them once built. _Matched, used once while planning, is a named tuple.


class _Matched(NamedTuple):
    """One descriptor's matched rule, and what names its counters and stats."""

    rule: RateLimitRule
    entries: Entries
    stats_key: str
    hits: int


@dataclass(slots=True)
class _LimitAnswer:
    """One limit of a rule as a status reports it; the same for every key under the rule."""

    limit: Limit
    #: The status's encoded ``current_limit`` field.
    field: bytes
    #: A hit that leaves more than this used counts as near the limit.
    near: int


@dataclass(slots=True)
class _Counted:
    """A descriptor whose answer depends on its counters: everything but their outcomes."""

    hits: int
    #: Its rule's stats row (see :class:`~ratekeeper.server.metrics.RuleStats`).
    row: list[int]
    #: One per counter, aligned with the store's outcomes; empty for an ``unlimited`` rule.
    limits: tuple[_LimitAnswer, ...]
    #: The store hits it makes, one per limit.
    counted: tuple[Hit, ...]
    shadow: bool
    quota: bool


#: The status of a descriptor that counts nothing: unmatched, whitelisted or replaced.
_STATUS_OK = rls_wire.status_code_only(_OK)
_STATUS_UNLIMITED = rls_wire.status_code_only(_OK, _UNLIMITED_REMAINING)
#: Statuses when the store failed, by ``fail_closed``.
_STATUS_STORE_DOWN = {True: rls_wire.status_code_only(_OVER), False: _STATUS_OK}


@dataclass(slots=True)
class _RequestPlan:
    """Everything a request's answer needs that does not depend on the counters' state."""

    #: One answer per descriptor, aligned with the request: a fixed encoded status, or counted.
    answers: tuple[bytes | _Counted, ...]
    #: The store hits of every counted descriptor, in order.
    hits: tuple[Hit, ...]
    #: The ``domain_not_found`` row of a domain no config defines, else ``None``.
    unknown_domain: list[int] | None = None


def _path_key(domain: str, entries: Entries) -> str:
    return ".".join([domain, *(f"{k}_{v}" if v else k for k, v in entries)])


def _seconds(ns: int) -> int:
    return -(-ns // NS_PER_SECOND)


def _most_restrictive(
    limits: Sequence[_LimitAnswer], outcomes: Sequence[Outcome], start: int
) -> tuple[_LimitAnswer, Outcome]:
    """The limit a status reports, of ``limits`` and their outcomes from ``outcomes[start:]``:
    an over limit first, then the least remaining, then the longest wait to reset."""
    if len(limits) == 1:
        return limits[0], outcomes[start]
    pairs = zip(limits, outcomes[start : start + len(limits)], strict=True)
    return min(pairs, key=lambda p: (p[1].allowed, p[1].remaining, -p[1].reset_after_ns))


class RateLimitService:
    """Answers ``ShouldRateLimit``; raises :class:`~ratekeeper.errors.RequestError` if malformed.

    Never raises for store failures: they are answered per :attr:`RlsSettings.fail_closed`.
    """

    def __init__(
        self,
        policy: PolicyHolder,
        store: Store,
        metrics: Metrics,
        decisions: RlsSettings,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._policy = policy
        self._store = store
        self._metrics = metrics
        self._decisions = decisions
        self._clock = clock
        self._last_store_log = 0
        names = decisions.headers
        self._header_names: tuple[bytes, bytes, bytes] | None = None
        if names is not None:
            self._header_names = (names[0].encode(), names[1].encode(), names[2].encode())
        # Serialized request → its plan, for the policy in ``_plans_policy``. Keyed on the bytes
        # off the wire: a request seen before is neither parsed nor matched again, and matching,
        # entry tuples and Counter objects cost more than the store itself.
        self._plan_cache: dict[bytes, _RequestPlan] = {}
        self._answers_cache: dict[tuple[str | None, tuple[Limit, ...]], tuple[_LimitAnswer, ...]]
        self._answers_cache = {}
        self._plans_policy: object = None
        self._known_domains: frozenset[str] = frozenset()

    async def answer(self, request: bytes) -> bytes:
        """``ShouldRateLimit`` on the wire: a serialized ``RateLimitRequest`` in, a serialized
        ``RateLimitResponse`` out (what the gRPC servicer exchanges, with no protobuf objects)."""
        planned = self._request_plan(request)
        if planned.unknown_domain is not None:
            planned.unknown_domain[0] += len(planned.answers)
        now = self._clock()
        outcomes: list[Outcome] | None = []
        if planned.hits:
            try:  # inline, not a helper coroutine: one frame less on every call
                outcomes = await self._store.hit(planned.hits, now)
            except (BackendError, OSError) as exc:
                self._store_failed(exc, now)
                outcomes = None
        return self._respond(planned.answers, outcomes)

    async def should_rate_limit(self, request: RateLimitRequest) -> RateLimitResponse:
        """:meth:`answer` for a request already parsed (``POST /json``)."""
        return RateLimitResponse.FromString(await self.answer(request.SerializeToString()))

    def _request_plan(self, raw: bytes) -> _RequestPlan:
        cache = self._plan_cache
        if self._policy.policy is not self._plans_policy:  # a reload voids the old plans
            cache.clear()
            self._answers_cache.clear()
            self._plans_policy = self._policy.policy
            self._known_domains = frozenset(self._policy.policy.domains)
        planned = cache.get(raw)
        if planned is None:
            planned = self._plan_request(_parse(raw), len(raw))
            if len(raw) <= _MAX_CACHED_BYTES:
                if len(cache) >= _MAX_PLANS:
                    cache.clear()
                cache[raw] = planned
        return planned

    def _plan_request(self, request: RateLimitRequest, size: int) -> _RequestPlan:
        """Validate ``request`` (``size`` bytes) and plan its answer (a cache miss)."""
        domain = request.domain
        descriptors = request.descriptors
        if not domain:
            raise RequestError("rate limit domain must not be empty")
        if not descriptors:
            raise RequestError("rate limit descriptor list must not be empty")
        if len(descriptors) > MAX_DESCRIPTORS:
            raise RequestError(f"more than {MAX_DESCRIPTORS} descriptors in one request")
        known = domain in self._known_domains
        default_hits = request.hits_addend or 1
        matched = []
        for index, descriptor in enumerate(descriptors):
            # No descriptor is larger than the request: most requests need no size check.
            if size > MAX_DESCRIPTOR_BYTES and descriptor.ByteSize() > MAX_DESCRIPTOR_BYTES:
                raise RequestError(f"descriptor {index}: larger than {MAX_DESCRIPTOR_BYTES} bytes")
            if known:
                matched.append(self._match(index, domain, descriptor, default_hits))
        if not known:
            # As the reference does: OK with no limit, overrides included, and counted.
            row = self._metrics.domain_not_found.row(domain)
            return _RequestPlan((_STATUS_OK,) * len(descriptors), (), row)
        replaced = {name for m in matched if m is not None for name in m.rule.replaces}
        answers: list[bytes | _Counted] = []
        hits: list[Hit] = []
        for m in matched:
            if m is None or m.rule.name in replaced or m.rule.whitelisted:
                answers.append(_STATUS_OK)
            else:
                counted = self._counted(domain, m)
                answers.append(counted)
                hits.extend(counted.counted)
        return _RequestPlan(tuple(answers), tuple(hits))

    def _counted(self, domain: str, matched: _Matched) -> _Counted:
        rule, hits, entries = matched.rule, matched.hits, matched.entries
        counted = (
            ()
            if rule.unlimited
            else tuple([Hit(Counter(domain, entries, limit), hits) for limit in rule.limits])
        )
        return _Counted(
            hits,
            self._metrics.rules.row(domain, matched.stats_key),
            () if rule.unlimited else self._limit_answers(rule),
            counted,
            rule.shadow_mode,
            rule.quota_mode or self._decisions.quota_mode,
        )

    def _limit_answers(self, rule: RateLimitRule) -> tuple[_LimitAnswer, ...]:
        """How ``rule``'s limits appear in statuses; cached, as many keys share a rule."""
        key = (rule.name, rule.limits)
        answers = self._answers_cache.get(key)
        if answers is None:
            ratio = self._decisions.near_limit_ratio
            name = rule.name or ""
            answers = tuple(
                _LimitAnswer(
                    limit,
                    rls_wire.current_limit(limit.amount, _UNIT_TO_PROTO[limit.unit], name),
                    int(limit.amount * ratio),
                )
                for limit in rule.limits
            )
            if len(self._answers_cache) >= _MAX_PLANS:  # overrides bring limits of their own
                self._answers_cache.clear()
            self._answers_cache[key] = answers
        return answers

    def _match(
        self, index: int, domain: str, descriptor: Any, default_hits: int
    ) -> _Matched | None:
        policy = self._policy.policy
        entries = tuple([(entry.key, entry.value) for entry in descriptor.entries])
        has_own = descriptor.HasField("hits_addend")
        hits = descriptor.hits_addend.value if has_own else default_hits
        if descriptor.HasField("limit"):
            return self._override(index, domain, entries, descriptor.limit, hits)
        match = policy.match(domain, entries)
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
        amount = override.requests_per_unit
        limit = Limit(amount, unit, algorithm=self._decisions.override_algorithm)
        key = _path_key(domain, entries)
        return _Matched(RateLimitRule(domain, key, (limit,)), entries, key, hits)

    def _store_failed(self, exc: Exception, now: int) -> None:
        self._metrics.store_errors.inc()
        if now - self._last_store_log >= NS_PER_SECOND:  # one line a second, not per call
            self._last_store_log = now
            log.warning("store error, answering per FAIL_CLOSED: %s", exc)

    def _respond(
        self, answers: Sequence[bytes | _Counted], outcomes: list[Outcome] | None
    ) -> bytes:
        fields: list[bytes] = []
        overall = _OK
        position = 0
        # Quota mode: descriptors over a quota make the request OVER_LIMIT only when every
        # quota descriptor in it is over; each status still says which ones are.
        quotas = quotas_over = 0
        # The status the RateLimit-* headers describe: the first over, else the least remaining.
        headers = self._header_names is not None
        shown: tuple[Limit, Outcome] | None = None
        shown_over = False
        for answer in answers:
            if isinstance(answer, bytes):
                fields.append(answer)
                continue
            row = answer.row
            row[Column.TOTAL_HITS] += answer.hits
            if not answer.limits:  # unlimited
                row[Column.WITHIN_LIMIT] += answer.hits
                fields.append(_STATUS_UNLIMITED)
                continue
            if outcomes is None:
                code = _OVER if self._decisions.fail_closed else _OK
                fields.append(_STATUS_STORE_DOWN[self._decisions.fail_closed])
            else:
                chosen, outcome = _most_restrictive(answer.limits, outcomes, position)
                position += len(answer.limits)
                code = self._judge(answer, chosen, outcome)
                reset = _seconds(outcome.reset_after_ns)
                fields.append(rls_wire.status(code, chosen.field, outcome.remaining, reset))
                if (
                    headers
                    and not shown_over
                    and (shown is None or code == _OVER or outcome.remaining < shown[1].remaining)
                ):
                    shown, shown_over = (chosen.limit, outcome), code == _OVER
            if answer.quota:
                quotas += 1
                quotas_over += code == _OVER
            elif code == _OVER:
                overall = _OVER
        if quotas and quotas_over == quotas:
            overall = _OVER
        if self._header_names is not None and shown is not None:
            fields.extend(_headers(self._header_names, *shown))
        return rls_wire.response(overall, fields)

    def _judge(self, answer: _Counted, chosen: _LimitAnswer, outcome: Outcome) -> int:
        """The status code of one counted descriptor; counts its stats."""
        row, hits = answer.row, answer.hits
        if outcome.allowed:
            row[Column.WITHIN_LIMIT] += hits
            if chosen.limit.amount - outcome.remaining > chosen.near:
                row[Column.NEAR_LIMIT] += hits
            return _OK
        row[Column.OVER_LIMIT] += hits
        if answer.shadow:
            row[Column.SHADOW_MODE] += hits
            return _OK
        if self._decisions.shadow_mode:
            self._metrics.global_shadow_mode.inc()
            return _OK
        return _OVER


def _parse(raw: bytes) -> RateLimitRequest:
    try:
        return RateLimitRequest.FromString(raw)
    except DecodeError as exc:
        raise RequestError(f"malformed RateLimitRequest: {exc}") from None


def _headers(names: tuple[bytes, bytes, bytes], limit: Limit, outcome: Outcome) -> list[bytes]:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (names as configured)."""
    values = (limit.amount, outcome.remaining, _seconds(outcome.reset_after_ns))
    return [rls_wire.header(name, str(value)) for name, value in zip(names, values, strict=True)]
