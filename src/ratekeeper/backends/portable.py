"""Counter state that travels between processes: instants as ages, and the stricter of two states.

A :class:`~ratekeeper.backends.store.CounterSnapshot` carries an algorithm's state fields with
every instant written as an age, nanoseconds before the exporter's ``now``, so that exporter and
importer need no shared clock:

* **Token bucket** ``(level, updated_at)`` travels as ``(level, now - updated_at)``; the importer
  puts ``updated_at`` at its own ``now`` minus that age, so the bucket refills from where it was.
* **Windows** (fixed and sliding) start at epoch-aligned whole seconds, by definition, to line up
  across processes. ``start_s`` travels as the age of the window start; the importer reads it as
  "``age // period`` windows before the current one" of its own clock. With clocks that agree
  this is the same window; with clocks that differ, the counts of the exporter's current window
  stay in the importer's current window (rather than landing in a past one and being forgotten,
  which would hand quota back).

Merging a snapshot into a counter already held keeps, field by field, the stricter value of the
two states brought up to the importer's ``now`` (the lower bucket level and the later refill
start; the later window and, within it, the higher counts). The result is at least as strict as
each of the two at every later instant, whatever hits follow.

Pure: no clock, no IO. Dispatch is one table per algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ratekeeper.core import fixed_window, sliding_window, token_bucket
from ratekeeper.core.algorithms import STRATEGIES, State
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit

__all__ = ["export_state", "import_state", "stricter"]


@dataclass(frozen=True, slots=True)
class _Codec:
    #: ``(state, limit, now)`` → the portable fields.
    out: Callable[[Any, Limit, int], tuple[int, ...]]
    #: ``(fields, limit, now)`` → the state on this side's clock.
    into: Callable[[tuple[int, ...], Limit, int], State]
    #: ``(a, b)`` → the stricter of two states already brought up to the same ``now``.
    merge: Callable[[Any, Any], State]
    #: How many fields the portable form has.
    width: int


def _window_start_from_age(limit: Limit, now: int, age_ns: int) -> int:
    """The window ``age_ns // period`` windows before the one containing ``now``."""
    return fixed_window.window_start(limit, now) - (age_ns // limit.period_ns) * limit.period_s


def _bucket_out(state: token_bucket.TokenBucket, limit: Limit, now: int) -> tuple[int, ...]:
    return (state.level, now - state.updated_at)


def _bucket_into(fields: tuple[int, ...], limit: Limit, now: int) -> State:
    level, age = fields
    return token_bucket.TokenBucket(level, now - age)


def _bucket_merge(
    a: token_bucket.TokenBucket, b: token_bucket.TokenBucket
) -> token_bucket.TokenBucket:
    return token_bucket.TokenBucket(min(a.level, b.level), max(a.updated_at, b.updated_at))


def _fixed_out(state: fixed_window.FixedWindow, limit: Limit, now: int) -> tuple[int, ...]:
    return (now - state.start_s * NS_PER_SECOND, state.count)


def _fixed_into(fields: tuple[int, ...], limit: Limit, now: int) -> State:
    age, count = fields
    return fixed_window.FixedWindow(_window_start_from_age(limit, now, age), count)


def _fixed_merge(
    a: fixed_window.FixedWindow, b: fixed_window.FixedWindow
) -> fixed_window.FixedWindow:
    if a.start_s != b.start_s:  # a later window is where counting goes on
        return a if a.start_s > b.start_s else b
    return fixed_window.FixedWindow(a.start_s, max(a.count, b.count))


def _sliding_out(state: sliding_window.SlidingWindow, limit: Limit, now: int) -> tuple[int, ...]:
    return (now - state.start_s * NS_PER_SECOND, state.current, state.previous)


def _sliding_into(fields: tuple[int, ...], limit: Limit, now: int) -> State:
    age, current, previous = fields
    return sliding_window.SlidingWindow(_window_start_from_age(limit, now, age), current, previous)


def _sliding_merge(
    a: sliding_window.SlidingWindow, b: sliding_window.SlidingWindow
) -> sliding_window.SlidingWindow:
    if a.start_s != b.start_s:
        return a if a.start_s > b.start_s else b
    return sliding_window.SlidingWindow(
        a.start_s, max(a.current, b.current), max(a.previous, b.previous)
    )


_CODECS: dict[Algorithm, _Codec] = {
    Algorithm.TOKEN_BUCKET: _Codec(_bucket_out, _bucket_into, _bucket_merge, 2),
    Algorithm.FIXED_WINDOW: _Codec(_fixed_out, _fixed_into, _fixed_merge, 2),
    Algorithm.SLIDING_WINDOW: _Codec(_sliding_out, _sliding_into, _sliding_merge, 3),
}


def export_state(state: State, limit: Limit, now: int) -> tuple[int, ...]:
    """``state``'s fields with each instant written as its age before ``now``."""
    return _CODECS[limit.algorithm].out(state, limit, now)


def import_state(fields: tuple[int, ...], limit: Limit, now: int) -> State:
    """The state :func:`export_state` wrote, on this side's clock (``now``)."""
    codec = _CODECS[limit.algorithm]
    if len(fields) != codec.width:  # misuse: a snapshot from another version or algorithm
        raise ValueError(f"a {limit.algorithm.value} state has {codec.width} fields: {fields!r}")
    return codec.into(fields, limit, now)


def stricter(a: State, b: State, limit: Limit, now: int) -> State:
    """A state at least as strict as both ``a`` and ``b`` (which it may modify) from ``now`` on."""
    check = STRATEGIES[limit.algorithm].hit
    check(a, limit, now, 0)  # a zero-hit check brings each up to ``now``: refill, roll
    check(b, limit, now, 0)
    return _CODECS[limit.algorithm].merge(a, b)
