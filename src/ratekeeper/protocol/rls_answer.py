"""An RLS answer: a request's plan and its counters' outcomes in, the encoded response out.

Counts each counted descriptor's hits into its rule's stats as it goes. Semantics (as
envoyproxy/ratelimit): per-descriptor statuses aligned with the request; ``overall_code`` the
OR of the non-shadow descriptors; a rule with several limits (our extension) is over if any
limit is and reports the most restrictive one; rule and global shadow mode answer over as OK;
quota descriptors make the request over only when all of them are; ``RateLimit-*`` headers
describe the first over status, else the one with the least remaining. A descriptor another
cluster member answered (:class:`~ratekeeper.protocol.rls_plan.Forwarded`) takes part with the
status it was sent; its rule's stats are counted by that member, which decided it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ratekeeper.core.limits import NS_PER_SECOND, Limit, ceil_div
from ratekeeper.core.outcome import Outcome
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.rls_plan import (
    STATUS_OK,
    STATUS_UNLIMITED,
    Counted,
    Forwarded,
    LimitAnswer,
)
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = ["STATUS_STORE_DOWN", "Answerer"]

_OK = rls_wire.OK
_OVER = rls_wire.OVER_LIMIT
#: Statuses when the store (or a descriptor's owner) failed, by ``fail_closed``.
STATUS_STORE_DOWN = {True: rls_wire.status_code_only(_OVER), False: STATUS_OK}


def _most_restrictive(
    limits: Sequence[LimitAnswer], outcomes: Sequence[Outcome], start: int
) -> tuple[LimitAnswer, Outcome]:
    """The limit a status reports, of ``limits`` and their outcomes from ``outcomes[start:]``:
    an over limit first, then the least remaining, then the longest wait to reset."""
    if len(limits) == 1:
        return limits[0], outcomes[start]
    pairs = zip(limits, outcomes[start : start + len(limits)], strict=True)
    return min(pairs, key=lambda p: (p[1].allowed, p[1].remaining, -p[1].reset_after_ns))


class Answerer:
    """Writes answers as the settings shape them; see the module docstring."""

    def __init__(
        self,
        stats: StatsSink,
        *,
        shadow_mode: bool,
        fail_closed: bool,
        headers: tuple[str, str, str] | None,
    ) -> None:
        self._stats = stats
        self._shadow_mode = shadow_mode
        self._fail_closed = fail_closed
        self._header_names: tuple[bytes, bytes, bytes] | None = None
        if headers is not None:
            self._header_names = (headers[0].encode(), headers[1].encode(), headers[2].encode())

    def respond(
        self, answers: Sequence[bytes | Counted | Forwarded], outcomes: list[Outcome] | None
    ) -> bytes:
        """The encoded ``RateLimitResponse`` of a plan's ``answers``; ``outcomes`` are the
        store's, aligned with the hits of the ``Counted`` answers, or ``None`` if the store
        failed."""
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
            if isinstance(answer, Forwarded):
                fields.append(answer.field)
                code = answer.code
                seen = answer.shown
                if (
                    headers
                    and seen is not None
                    and not shown_over
                    and (shown is None or code == _OVER or seen[1].remaining < shown[1].remaining)
                ):
                    shown, shown_over = seen, code == _OVER
            else:
                counts = answer.counts
                counts.total_hits += answer.hits
                if not answer.limits:  # unlimited
                    counts.within_limit += answer.hits
                    fields.append(STATUS_UNLIMITED)
                    continue
                if outcomes is None:
                    code = _OVER if self._fail_closed else _OK
                    fields.append(STATUS_STORE_DOWN[self._fail_closed])
                else:
                    chosen, outcome = _most_restrictive(answer.limits, outcomes, position)
                    position += len(answer.limits)
                    code = self._judge(answer, chosen, outcome)
                    reset = ceil_div(outcome.reset_after_ns, NS_PER_SECOND)
                    fields.append(rls_wire.status(code, chosen.field, outcome.remaining, reset))
                    if (
                        headers
                        and not shown_over
                        and (
                            shown is None or code == _OVER or outcome.remaining < shown[1].remaining
                        )
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

    def _judge(self, answer: Counted, chosen: LimitAnswer, outcome: Outcome) -> int:
        """The status code of one counted descriptor; counts its stats."""
        counts, hits = answer.counts, answer.hits
        if outcome.allowed:
            counts.within_limit += hits
            if chosen.limit.amount - outcome.remaining > chosen.near:
                counts.near_limit += hits
            return _OK
        counts.over_limit += hits
        if answer.shadow:
            counts.shadow_mode += hits
            return _OK
        if self._shadow_mode:
            self._stats.count(Event.GLOBAL_SHADOW_MODE)
            return _OK
        return _OVER


def _headers(names: tuple[bytes, bytes, bytes], limit: Limit, outcome: Outcome) -> list[bytes]:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (names as configured)."""
    values = (limit.amount, outcome.remaining, ceil_div(outcome.reset_after_ns, NS_PER_SECOND))
    return [rls_wire.header(name, str(value)) for name, value in zip(names, values, strict=True)]
