"""Hypothesis strategies and a small driver shared by the core tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from ratekeeper.core.algorithms import STRATEGIES
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit, Unit
from ratekeeper.core.outcome import Outcome

#: Every property here is CPU-bound and deterministic; the tuning keeps tests/core well under 30 s
#: on a shared two-core machine.
FAST = settings(max_examples=40, deadline=None)
THOROUGH = settings(max_examples=100, deadline=None)

#: A timestamp near today (ns since the epoch) and roughly 50 years of them.
TODAY_NS = 1_763_700_000 * NS_PER_SECOND
FIFTY_YEARS_NS = 50 * 365 * 86_400 * NS_PER_SECOND
ONE_YEAR_NS = 365 * 86_400 * NS_PER_SECOND

MAX_HITS = 4


def limits(
    algorithm: Algorithm | None = None,
    *,
    max_amount: int = 40,
    units: tuple[Unit, ...] = tuple(Unit),
    bursts: bool = True,
) -> st.SearchStrategy[Limit]:
    """Random limits; ``algorithm=None`` draws the algorithm too."""
    return st.builds(
        Limit,
        # Small amounts are where boundary effects show, so they are drawn often.
        amount=st.integers(0, 4) | st.integers(0, max_amount),
        unit=st.sampled_from(units),
        multiplier=st.integers(1, 5),
        burst=st.none() | st.integers(0, 2 * max_amount) if bursts else st.none(),
        algorithm=st.sampled_from(Algorithm) if algorithm is None else st.just(algorithm),
    )


def starts(limit: Limit | None = None) -> st.SearchStrategy[int]:
    """Start times anywhere in the next ~50 years of ns since the epoch.

    Given a limit, starts are often placed just before or at one of its epoch-aligned window
    boundaries, where the window algorithms are weakest.
    """
    anywhere = st.integers(TODAY_NS, TODAY_NS + FIFTY_YEARS_NS)
    if limit is None:
        return anywhere
    period = limit.period_ns
    boundary = anywhere.map(lambda t: t - t % period)
    return anywhere | st.builds(lambda b, before: b - before, boundary, st.integers(0, 2000))


@dataclass(frozen=True, slots=True)
class Arrival:
    """One call: ``hits`` at ``gap`` ns after the previous call (0: the same instant)."""

    gap: int
    hits: int
    #: Reported (debited) rather than decided.
    reported: bool = False


def arrivals(
    limit: Limit,
    *,
    min_size: int = 0,
    max_size: int = 40,
    reports: bool = False,
    backwards: bool = False,
) -> st.SearchStrategy[list[Arrival]]:
    """Weakly increasing arrival sequences scaled to the limit's period.

    Gaps mix simultaneous hits, the refill interval of one token and whole periods, so that
    sequences both saturate the limit and cross window boundaries. With ``backwards`` the clock
    also steps back by up to two periods (an NTP correction, a misbehaving host).
    """
    period = limit.period_ns
    token = period // max(limit.amount, 1)
    gaps = st.one_of(
        st.just(0),
        st.integers(1, 3 * token),
        st.integers(0, 2 * period),
        st.integers(0, 1000),
        st.integers(-2 * period, -1) if backwards else st.nothing(),
    )
    return st.lists(
        st.builds(
            Arrival,
            gap=gaps,
            hits=st.just(1) | st.integers(0, MAX_HITS),
            reported=st.booleans() if reports else st.just(False),
        ),
        min_size=min_size,
        max_size=max_size,
    )


def times(start: int, sequence: list[Arrival]) -> list[int]:
    """Absolute times of a sequence that starts at ``start``."""
    out = []
    now = start
    for arrival in sequence:
        now += arrival.gap
        out.append(now)
    return out


def drive(limit: Limit, start: int, sequence: list[Arrival]) -> list[Outcome | None]:
    """Run ``sequence`` through the limit's algorithm from a fresh state at ``start``.

    Returns each call's outcome (``None`` for a report, which decides nothing).
    """
    return replay(STRATEGIES[limit.algorithm].new(limit, start), limit, start, sequence)


def replay(state: Any, limit: Limit, start: int, sequence: list[Arrival]) -> list[Outcome | None]:
    """Run ``sequence`` (starting at ``start``) on an existing ``state``, as :func:`drive`."""
    strategy = STRATEGIES[limit.algorithm]
    results: list[Outcome | None] = []
    for now, arrival in zip(times(start, sequence), sequence, strict=True):
        if arrival.reported:
            strategy.debit(state, limit, now, arrival.hits)
            results.append(None)
        else:
            results.append(strategy.hit(state, limit, now, arrival.hits))
    return results


def settle(data: st.DataObject, limit: Limit, *, max_size: int = 40) -> tuple[Any, int]:
    """A state after a random sequence of hits and reports, and the time of its last call."""
    start = data.draw(starts(limit))
    sequence = data.draw(arrivals(limit, max_size=max_size, reports=True))
    state = STRATEGIES[limit.algorithm].new(limit, start)
    replay(state, limit, start, sequence)
    return state, start + sum(arrival.gap for arrival in sequence)


def admitted(sequence: list[Arrival], results: list[Outcome | None]) -> list[int]:
    """Hits admitted by each call (0 for refusals and reports)."""
    return [
        arrival.hits if result is not None and result.allowed else 0
        for arrival, result in zip(sequence, results, strict=True)
    ]
