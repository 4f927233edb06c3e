"""Envoy RLS decisions: a ``RateLimitRequest`` in, a ``RateLimitResponse`` out, no transport.

The gRPC servicer (``ratekeeper.server.rls_servicer``) and ``POST /json`` both call
:class:`RlsDecider`; so can anything that embeds the decision (a sidecar). One request makes
exactly one store call carrying every counter it touches. The semantics follow
envoyproxy/ratelimit (see ``docs/operations.md``): :mod:`~ratekeeper.protocol.rls_plan` plans a
request on first sight (validation, matching, ``hits_addend``, ``replaces``, overrides, quota
mode) and :mod:`~ratekeeper.protocol.rls_answer` writes the answer with its stats (shadow mode,
the most restrictive limit, headers). In a cluster, a :class:`~ratekeeper.protocol.rls_forward.
Forwarder` sits between the two: descriptors another member owns are decided by that member
(:mod:`~ratekeeper.protocol.rls_forward`); a call another member forwarded is answered with
:meth:`RlsDecider.answer_forwarded`, here, whoever this member thinks owns its keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf.message import DecodeError

from ratekeeper.backends.store import Hit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm
from ratekeeper.core.outcome import Outcome
from ratekeeper.errors import BackendError, ForwardError, RequestError
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Policy, PolicyHolder
from ratekeeper.protocol.rls_answer import Answerer
from ratekeeper.protocol.rls_forward import DescriptorStatus, Forwarder, Routes, merge, route
from ratekeeper.protocol.rls_metadata import with_dynamic_metadata
from ratekeeper.protocol.rls_plan import MAX_TEXT, Planner, RequestPlan
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = ["RlsDecider", "RlsSettings"]

log = logging.getLogger(__name__)

#: Request plans remembered per policy; the cache starts over when full. With requests cached
#: only up to ``_MAX_CACHED_BYTES``, it holds ~16 MB at most.
_MAX_PLANS = 16_384
_MAX_CACHED_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RlsSettings:
    """How RLS decisions are shaped; set once from the server settings."""

    #: Global shadow mode: statuses stay OVER_LIMIT, ``overall_code`` is OK (counted once).
    shadow_mode: bool = False
    #: Hits past ``floor(amount × ratio)`` count as near_limit.
    near_limit_ratio: float = 0.8
    #: On a store error answer OVER_LIMIT (True) or OK (False, fail open).
    fail_closed: bool = False
    #: Names of the limit, remaining and reset headers; ``None``: no headers.
    headers: tuple[str, str, str] | None = None
    #: Algorithm of ``RateLimitOverride`` limits sent by Envoy.
    override_algorithm: Algorithm = Algorithm.TOKEN_BUCKET
    #: Global quota mode: every limited descriptor is a quota descriptor.
    quota_mode: bool = False
    #: Longest domain, descriptor key or value a request may carry (longer: INVALID_ARGUMENT).
    max_text: int = MAX_TEXT
    #: Fill the response's ``dynamic_metadata`` (``RESPONSE_DYNAMIC_METADATA``; see
    #: :mod:`~ratekeeper.protocol.rls_metadata`).
    dynamic_metadata: bool = False


class RlsDecider:
    """Answers ``ShouldRateLimit``; raises :class:`~ratekeeper.errors.RequestError` if the
    request is malformed.

    Never raises for store failures: they are answered per :attr:`RlsSettings.fail_closed` and
    counted as :attr:`~ratekeeper.protocol.stats.Event.STORE_ERROR`. Event loop only.
    """

    def __init__(
        self,
        policy: PolicyHolder,
        store: StoreGate,
        stats: StatsSink,
        settings: RlsSettings = RlsSettings(),
        forwarder: Forwarder | None = None,
    ) -> None:
        self._policy = policy
        self._store = store
        self._stats = stats
        self._settings = settings
        self._forwarder = forwarder
        self._planner = self._planner_for(policy.policy)
        self._respond = Answerer(
            stats,
            shadow_mode=settings.shadow_mode,
            fail_closed=settings.fail_closed,
            headers=settings.headers,
        ).respond
        self._last_store_log = self._last_forward_log = -NS_PER_SECOND
        # Serialized request → its plan, for the policy in ``_plans_policy``. Keyed on the bytes
        # off the wire: a request seen before is neither parsed nor matched again, and matching,
        # entry tuples and Counter objects cost more than the store itself.
        self._plan_cache: dict[bytes, RequestPlan] = {}
        self._plans_policy: object = policy.policy
        if settings.dynamic_metadata:  # an instance attribute: the default path is untouched
            self.answer = self._answer_with_metadata  # type: ignore[method-assign]

    async def answer(self, request: bytes, now: int) -> bytes:
        """``ShouldRateLimit`` on the wire, decided at ``now`` (ns since the epoch): a
        serialized ``RateLimitRequest`` in, a serialized ``RateLimitResponse`` out (what the
        gRPC servicer exchanges, with no protobuf objects)."""
        planned = self._request_plan(request)
        if planned.unknown_domain is not None:
            planned.unknown_domain.count += len(planned.answers)
        outcomes: list[Outcome] | None = []
        if planned.hits:
            if self._forwarder is not None:
                routes = route(planned, self._forwarder.owner_of)
                if routes is not None:
                    return await self._answer_routed(planned, routes, now)
            try:  # inline, not a helper coroutine: one frame less on every call
                outcomes = await self._store.hit(planned.hits, now)
            except (BackendError, OSError) as exc:
                self._store_failed(exc, now)
                outcomes = None
        return self._respond(planned.answers, outcomes)

    async def _answer_with_metadata(self, request: bytes, now: int) -> bytes:
        """:meth:`answer` with the response's ``dynamic_metadata`` filled."""
        response = await RlsDecider.answer(self, request, now)
        return with_dynamic_metadata(request, response, self._policy.policy)

    @property
    def forwarding(self) -> bool:
        """Whether descriptors owned by other members are forwarded (a cluster member)."""
        return self._forwarder is not None

    async def answer_forwarded(self, request: bytes, now: int) -> bytes:
        """:meth:`answer` for a call another member forwarded: decided here, never forwarded
        again, even for keys this member thinks it does not own (the gate applies those too,
        and counts them misdirected)."""
        return (await self.answer_forwarded_many((request,), now))[0]

    async def answer_forwarded_many(self, requests: Sequence[bytes], now: int) -> list[bytes]:
        """:meth:`answer_forwarded` of several requests (coalesced by another member), each
        planned and answered on its own, with one store call for them all."""
        plans = [self._request_plan(request) for request in requests]
        hits = [hit for planned in plans for hit in planned.hits]
        outcomes = await self._hit(hits, now) if hits else []
        answers = []
        position = 0
        for planned in plans:
            if outcomes is None:
                answers.append(self._respond(planned.answers, None, False))
                continue
            end = position + len(planned.hits)
            answers.append(self._respond(planned.answers, outcomes[position:end], False))
            position = end
        return answers

    async def _answer_routed(self, planned: RequestPlan, routes: Routes, now: int) -> bytes:
        """Each owner's descriptors forwarded to it (one call per owner) while the ones owned
        here are counted here."""
        forwarder = self._forwarder
        assert forwarder is not None
        calls = {
            owner: self._forward(forwarder, owner, routes.domain, planned, indexes, now)
            for owner, indexes in routes.remote.items()
        }
        outcomes: list[Outcome] | None = []
        if not routes.local_hits and len(calls) == 1:  # the usual: one descriptor, elsewhere
            ((owner, call),) = calls.items()
            answered = {owner: await call}
        else:
            tasks = {owner: asyncio.ensure_future(call) for owner, call in calls.items()}
            try:
                if routes.local_hits:
                    outcomes = await self._hit(routes.local_hits, now)
                answered = {owner: await task for owner, task in tasks.items()}
            finally:
                for task in tasks.values():
                    task.cancel()  # only those still running, if this call was cancelled
        answers = merge(planned, routes.remote, answered, self._settings.fail_closed)
        return self._respond(answers, outcomes)

    async def _forward(
        self,
        forwarder: Forwarder,
        owner: str,
        domain: str,
        planned: RequestPlan,
        indexes: list[int],
        now: int,
    ) -> Sequence[DescriptorStatus] | None:
        """``owner``'s statuses of the descriptors at ``indexes``; ``None`` if it failed."""
        try:
            return await forwarder.forward(owner, domain, [planned.wires[i] for i in indexes])
        except ForwardError as exc:
            self._forward_failed(exc, now)
            return None

    async def _hit(self, hits: Sequence[Hit], now: int) -> list[Outcome] | None:
        """The store's outcomes of ``hits``; ``None`` if it failed (counted and logged)."""
        try:
            return await self._store.hit(hits, now)
        except (BackendError, OSError) as exc:
            self._store_failed(exc, now)
            return None

    async def should_rate_limit(self, request: RateLimitRequest, now: int) -> RateLimitResponse:
        """:meth:`answer` for a request already parsed (``POST /json``)."""
        return RateLimitResponse.FromString(await self.answer(request.SerializeToString(), now))

    def _request_plan(self, raw: bytes) -> RequestPlan:
        cache = self._plan_cache
        policy = self._policy.policy
        if policy is not self._plans_policy:  # a reload voids the old plans
            cache.clear()
            self._planner = self._planner_for(policy)
            self._plans_policy = policy
        planned = cache.get(raw)
        if planned is None:
            planned = self._planner.plan(_parse(raw), len(raw))
            if len(raw) <= _MAX_CACHED_BYTES:
                if len(cache) >= _MAX_PLANS:
                    cache.clear()
                cache[raw] = planned
        return planned

    def _planner_for(self, policy: Policy) -> Planner:
        s = self._settings
        return Planner(
            policy,
            self._stats,
            near_limit_ratio=s.near_limit_ratio,
            override_algorithm=s.override_algorithm,
            quota_mode=s.quota_mode,
            forwarding=self._forwarder is not None,
            max_text=s.max_text,
        )

    def _store_failed(self, exc: Exception, now: int) -> None:
        self._stats.count(Event.STORE_ERROR)
        if now - self._last_store_log >= NS_PER_SECOND:  # one line a second, not per call
            self._last_store_log = now
            log.warning("store error, %s: %s", self._failure_answer(), exc)

    def _forward_failed(self, exc: ForwardError, now: int) -> None:
        self._stats.count(Event.FORWARD_ERROR)
        if now - self._last_forward_log >= NS_PER_SECOND:
            self._last_forward_log = now
            log.warning("forwarding failed, %s: %s", self._failure_answer(), exc)

    def _failure_answer(self) -> str:
        """What a failed call is answered, for its log line (the failure mode in force)."""
        if self._settings.fail_closed:
            return "answering OVER_LIMIT (fail closed)"
        return "answering OK (fail open)"


def _parse(raw: bytes) -> RateLimitRequest:
    try:
        return RateLimitRequest.FromString(raw)
    except DecodeError as exc:
        raise RequestError(f"malformed RateLimitRequest: {exc}") from None
