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
from typing import Any

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse

from ratekeeper.backends.store import Counter, Hit, Store
from ratekeeper.config.model import RateLimitRule
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, RequestError
from ratekeeper.server.metrics import Column, Metrics
from ratekeeper.server.reload import PolicyHolder

__all__ = ["Decisions", "RateLimitService"]

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
class Decisions:
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """One descriptor's matched rule and what it counts; the same for every identical descriptor
    under one policy, so it is built once and cached."""

    rule: RateLimitRule
    stats_key: str
    hits: int
    #: The store hits this descriptor makes, one per limit (none if unlimited or whitelisted).
    counted: tuple[Hit, ...]


def _new_plan(
    domain: str, rule: RateLimitRule, entries: Entries, stats_key: str, hits: int
) -> _Plan:
    counted = (
        ()
        if rule.unlimited
        else tuple(Hit(Counter(domain, entries, limit), hits) for limit in rule.limits)
    )
    return _Plan(rule, stats_key, hits, counted)


@dataclass(frozen=True, slots=True)
class _RequestPlan:
    """Everything a request's answer needs that does not depend on the counters' state."""

    #: One plan per descriptor, aligned with the request; ``None`` where no rule matched.
    plans: tuple[_Plan | None, ...]
    #: Names of rules another matched rule ``replaces``: answered OK, counted nowhere.
    replaced: frozenset[str]
    #: The store hits of every counted descriptor, in order.
    hits: tuple[Hit, ...]

    @classmethod
    def of(cls, plans: tuple[_Plan | None, ...]) -> _RequestPlan:
        replaced = frozenset(name for p in plans if p is not None for name in p.rule.replaces)
        hits = tuple(
            hit for p in plans if p is not None and p.rule.name not in replaced for hit in p.counted
        )
        return cls(plans, replaced, hits)


def _path_key(domain: str, entries: Entries) -> str:
    return ".".join([domain, *(f"{k}_{v}" if v else k for k, v in entries)])


def _seconds(ns: int) -> int:
    return -(-ns // NS_PER_SECOND)


def _most_restrictive(pairs: Sequence[tuple[Limit, Outcome]]) -> tuple[Limit, Outcome]:
    # An over limit first, then the least remaining, then the longest wait to reset.
    if len(pairs) == 1:
        return pairs[0]
    return min(pairs, key=lambda p: (p[1].allowed, p[1].remaining, -p[1].reset_after_ns))


class RateLimitService:
    """Answers ``ShouldRateLimit``; raises :class:`~ratekeeper.errors.RequestError` if malformed.

    Never raises for store failures: they are answered per :attr:`Decisions.fail_closed`.
    """

    def __init__(
        self,
        policy: PolicyHolder,
        store: Store,
        metrics: Metrics,
        decisions: Decisions,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._policy = policy
        self._store = store
        self._metrics = metrics
        self._decisions = decisions
        self._clock = clock
        self._last_store_log = 0
        # Serialized request → its plan, for the policy in ``_plans_policy``. Keyed on the whole
        # request's bytes (one C call): a request fresh off the wire would otherwise build a
        # Python wrapper for every descriptor and entry, and matching, entry tuples and Counter
        # objects cost more than the store itself.
        self._plan_cache: dict[bytes, _RequestPlan] = {}
        self._plans_policy: object = None

    async def should_rate_limit(self, request: RateLimitRequest) -> RateLimitResponse:
        planned = self._request_plan(request)
        now = self._clock()
        outcomes = await self._count(planned.hits, now) if planned.hits else []
        return self._respond(request.domain, planned.plans, planned.replaced, outcomes)

    def _request_plan(self, request: RateLimitRequest) -> _RequestPlan:
        cache = self._plan_cache
        if self._policy.policy is not self._plans_policy:  # a reload voids the old plans
            cache.clear()
            self._plans_policy = self._policy.policy
        raw = request.SerializeToString()
        planned = cache.get(raw)
        if planned is None:
            planned = _RequestPlan.of(self._plans(request))
            if len(raw) <= _MAX_CACHED_BYTES:
                if len(cache) >= _MAX_PLANS:
                    cache.clear()
                cache[raw] = planned
        return planned

    def _plans(self, request: RateLimitRequest) -> tuple[_Plan | None, ...]:
        """Validate ``request`` and plan each descriptor (a cache miss)."""
        domain = request.domain
        if not domain:
            raise RequestError("rate limit domain must not be empty")
        if not request.descriptors:
            raise RequestError("rate limit descriptor list must not be empty")
        if len(request.descriptors) > MAX_DESCRIPTORS:
            raise RequestError(f"more than {MAX_DESCRIPTORS} descriptors in one request")
        default_hits = request.hits_addend or 1
        plans = []
        for index, descriptor in enumerate(request.descriptors):
            if descriptor.ByteSize() > MAX_DESCRIPTOR_BYTES:
                raise RequestError(f"descriptor {index}: larger than {MAX_DESCRIPTOR_BYTES} bytes")
            plans.append(self._plan(index, domain, descriptor, default_hits))
        return tuple(plans)

    def _plan(self, index: int, domain: str, descriptor: Any, default_hits: int) -> _Plan | None:
        policy = self._policy.policy
        entries = tuple([(entry.key, entry.value) for entry in descriptor.entries])
        has_own = descriptor.HasField("hits_addend")
        hits = descriptor.hits_addend.value if has_own else default_hits
        if descriptor.HasField("limit"):
            # As the reference does: an override applies within a configured domain only.
            if domain not in policy.domains:
                return None
            return self._override(index, domain, entries, descriptor.limit, hits)
        match = policy.match(domain, entries)
        if match is None:
            return None
        return _new_plan(domain, match.rule, match.counter_entries, match.stats_key, hits)

    def _override(
        self, index: int, domain: str, entries: Entries, override: Any, hits: int
    ) -> _Plan:
        """A plan for a ``RateLimitOverride``: its limit, keyed by the full entries path."""
        unit = _UNIT_FROM_PROTO.get(override.unit)
        if unit is None:
            raise RequestError(f"descriptor {index}: limit override has no valid unit")
        amount = override.requests_per_unit
        limit = Limit(amount, unit, algorithm=self._decisions.override_algorithm)
        key = _path_key(domain, entries)
        return _new_plan(domain, RateLimitRule(domain, key, (limit,)), entries, key, hits)

    async def _count(self, hits: Sequence[Hit], now: int) -> list[Outcome] | None:
        """The store's outcomes, or ``None`` when it failed."""
        try:
            return await self._store.hit(hits, now)
        except (BackendError, OSError) as exc:
            self._metrics.store_errors.inc()
            if now - self._last_store_log >= NS_PER_SECOND:  # one line a second, not per call
                self._last_store_log = now
                log.warning("store error, answering per FAIL_CLOSED: %s", exc)
            return None

    def _respond(
        self,
        domain: str,
        plans: Sequence[_Plan | None],
        replaced: frozenset[str],
        outcomes: list[Outcome] | None,
    ) -> RateLimitResponse:
        response = RateLimitResponse(overall_code=_OK)
        results = iter(outcomes or ())
        # Quota mode: descriptors over a quota make the request OVER_LIMIT only when every
        # quota descriptor in it is over; each status still says which ones are.
        quotas = quotas_over = 0
        for plan in plans:
            status = response.statuses.add(code=_OK)
            if plan is None or plan.rule.name in replaced:
                continue
            if not (plan.rule.limits or plan.rule.unlimited):
                continue
            row = self._metrics.rules.row(domain, plan.stats_key)
            row[Column.TOTAL_HITS] += plan.hits
            if plan.rule.unlimited:
                row[Column.WITHIN_LIMIT] += plan.hits
                status.limit_remaining = _UNLIMITED_REMAINING
                continue
            if outcomes is None:
                status.code = _OVER if self._decisions.fail_closed else _OK
            else:
                pairs = [(limit, next(results)) for limit in plan.rule.limits]
                status.code = self._fill(status, plan, row, *_most_restrictive(pairs))
            over = status.code == _OVER
            if plan.rule.quota_mode or self._decisions.quota_mode:
                quotas += 1
                quotas_over += over
            elif over:
                response.overall_code = _OVER
        if quotas and quotas_over == quotas:
            response.overall_code = _OVER
        if self._decisions.headers is not None:
            self._add_headers(response, self._decisions.headers)
        return response

    def _fill(
        self, status: Any, plan: _Plan, row: list[int], limit: Limit, outcome: Outcome
    ) -> int:
        """Fill one status from its most restrictive outcome; count its stats; return the code."""
        current = status.current_limit
        current.requests_per_unit = limit.amount
        current.unit = _UNIT_TO_PROTO[limit.unit]
        current.name = plan.rule.name or ""
        status.limit_remaining = outcome.remaining
        status.duration_until_reset.seconds = _seconds(outcome.reset_after_ns)
        if outcome.allowed:
            row[Column.WITHIN_LIMIT] += plan.hits
            if limit.amount - outcome.remaining > int(
                limit.amount * self._decisions.near_limit_ratio
            ):
                row[Column.NEAR_LIMIT] += plan.hits
            return _OK
        row[Column.OVER_LIMIT] += plan.hits
        if plan.rule.shadow_mode:
            row[Column.SHADOW_MODE] += plan.hits
            return _OK
        if self._decisions.shadow_mode:
            self._metrics.global_shadow_mode.inc()
            return _OK
        return _OVER

    @staticmethod
    def _add_headers(response: RateLimitResponse, names: tuple[str, str, str]) -> None:
        """``RateLimit-*`` headers from the descriptor that is over, else the least remaining."""
        chosen = None
        for status in response.statuses:
            if not status.HasField("current_limit"):
                continue
            if status.code == _OVER:
                chosen = status
                break
            if chosen is None or status.limit_remaining < chosen.limit_remaining:
                chosen = status
        if chosen is None:
            return
        values = (
            chosen.current_limit.requests_per_unit,
            chosen.limit_remaining,
            chosen.duration_until_reset.seconds,
        )
        for name, value in zip(names, values, strict=True):
            response.response_headers_to_add.add(key=name, value=str(value))
