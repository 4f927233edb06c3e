"""One table from :class:`~ratekeeper.core.limits.Algorithm` to its operations.

Stores, the instruction maths and the conformance suite go through :data:`STRATEGIES` so that an
algorithm is written once, here in the pure core, and every backend only keeps its state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any

from ratekeeper.core import fixed_window, sliding_window, token_bucket
from ratekeeper.core.limits import Algorithm, Limit
from ratekeeper.core.outcome import Outcome

__all__ = ["STRATEGIES", "State", "Strategy", "after_debit", "peek"]

State = token_bucket.TokenBucket | fixed_window.FixedWindow | sliding_window.SlidingWindow


@dataclass(frozen=True, slots=True)
class Strategy:
    """The operations of one algorithm, each pure but for mutating the state it is given."""

    #: ``new(limit, now)``: fresh state, full capacity.
    new: Callable[[Limit, int], Any]
    #: ``hit(state, limit, now, hits)``: decide and count; ``hits == 0`` only checks.
    hit: Callable[[Any, Limit, int, int], Outcome]
    #: ``debit(state, limit, now, hits)``: count hits admitted elsewhere, past the limit if need be.
    debit: Callable[[Any, Limit, int, int], None]
    #: ``pack(state)``: the state's fields as a tuple of ints. A tuple of ints is not tracked by
    #: CPython's cyclic collector (a state object is), so a store holding many keeps them so.
    pack: Callable[[Any], tuple[int, ...]]
    #: ``unpack(*fields)``: the state back from :attr:`pack`'s fields.
    unpack: Callable[..., Any]


def _strategy(
    new: Callable[[Limit, int], Any],
    hit: Callable[[Any, Limit, int, int], Outcome],
    debit: Callable[[Any, Limit, int, int], None],
    state: type,
) -> Strategy:
    names = [f.name for f in fields(state)]  # every state has two fields or more: pack → tuple
    return Strategy(new, hit, debit, attrgetter(*names), state)


STRATEGIES: dict[Algorithm, Strategy] = {
    Algorithm.TOKEN_BUCKET: _strategy(
        token_bucket.new_bucket, token_bucket.take, token_bucket.debit, token_bucket.TokenBucket
    ),
    Algorithm.FIXED_WINDOW: _strategy(
        fixed_window.new_window, fixed_window.count, fixed_window.debit, fixed_window.FixedWindow
    ),
    Algorithm.SLIDING_WINDOW: _strategy(
        sliding_window.new_window,
        sliding_window.count,
        sliding_window.debit,
        sliding_window.SlidingWindow,
    ),
}


def peek(state: State, limit: Limit, now: int) -> Outcome:
    """The state's outcome at ``now``, leaving ``state`` untouched.

    The check runs on a copy: a check with zero hits still refills or rolls the state it is
    given, and a read must not move a bucket's clock or a store's copy of it.
    """
    return STRATEGIES[limit.algorithm].hit(replace(state), limit, now, 0)


def after_debit(state: State, limit: Limit, now: int, hits: int, debt: int = 0) -> Outcome:
    """Debit ``hits`` admitted elsewhere from ``state`` and describe it after, as a store's
    ``debit`` answers: ``allowed`` says whether one more hit would be admitted now.

    ``debt``: tokens of debt a token bucket may carry beyond its horizon
    (:func:`~ratekeeper.core.token_bucket.debt_floor`); windows ignore it."""
    strategy = STRATEGIES[limit.algorithm]
    if isinstance(state, token_bucket.TokenBucket):
        token_bucket.debit(state, limit, now, hits, debt)
    else:
        strategy.debit(state, limit, now, hits)
    # The debit brought the state up to ``now``, so a zero-hit check here changes nothing and
    # needs no copy (unlike ``peek``).
    outcome = strategy.hit(state, limit, now, 0)
    return outcome._replace(allowed=outcome.remaining > 0)
