"""The demand book: totals over fresh entries, bounded however many clients report."""

from __future__ import annotations

import math
import time

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.demand import DemandBook, until_repaid
from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit

from .strategies import FAST

MS = 1_000_000

reports = st.lists(
    st.tuples(
        st.integers(0, 200 * MS),  # gap
        st.sampled_from(["k1", "k2", "k3"]),
        st.sampled_from([f"c{i}" for i in range(8)]),
        st.floats(0.0, 1000.0),
    ),
    max_size=100,
)


@FAST
@given(reports=reports, max_clients=st.integers(1, 8), max_entries=st.integers(1, 30))
def test_total_is_the_fresh_demand_and_the_book_stays_bounded(
    reports: list[tuple[int, str, str, float]], max_clients: int, max_entries: int
) -> None:
    ttl = 300 * MS
    book: DemandBook[str] = DemandBook(ttl, max_clients=max_clients, max_entries=max_entries)
    model: dict[str, dict[str, tuple[float, int]]] = {}
    now = 0
    next_sweep: list[int] = []  # a full book is swept at most once per ttl / 4
    for gap, key, client, rate in reports:
        now += gap
        total = book.record(key, client, rate, now)
        fresh = {c: v for c, v in model.get(key, {}).items() if now - v[1] <= ttl}
        model[key] = fresh
        if client in fresh or (
            len(fresh) < max_clients and _room(model, now, ttl, max_entries, next_sweep)
        ):
            fresh[client] = (rate, now)
            model[key] = fresh
            assert math.isclose(total, sum(r for r, _ in fresh.values()), abs_tol=1e-6)
        else:
            # not recorded: the client's own demand still counts towards its share
            assert math.isclose(total, rate + sum(r for r, _ in fresh.values()), abs_tol=1e-6)
        model[key] = fresh
        assert len(book) <= max_entries


def _room(
    model: dict[str, dict[str, tuple[float, int]]],
    now: int,
    ttl: int,
    cap: int,
    next_sweep: list[int],
) -> bool:
    """Whether the book has room, as it decides: held entries (stale ones included until a
    sweep) under the cap, sweeping first when full and no sweep happened in the last ttl / 4."""
    held = sum(len(book) for book in model.values())
    if held >= cap and (not next_sweep or now >= next_sweep[0]):
        for key, book in model.items():
            model[key] = {c: v for c, v in book.items() if now - v[1] <= ttl}
        next_sweep[:] = [now + max(1, ttl // 4)]
        held = sum(len(book) for book in model.values())
    return held < cap


def test_a_full_book_of_fresh_entries_is_not_rescanned_for_each_new_one() -> None:
    # Issue 16: reports of 10,000 new keys into a full book (100,000 fresh entries) rescanned
    # it for every key, 10**9 steps a report: the server stalled for minutes.
    book: DemandBook[int] = DemandBook(500 * MS, max_entries=100_000)
    for key in range(100_000):
        book.record(key, "c", 1.0, 0)
    start = time.perf_counter()
    for key in range(100_000, 110_000):
        assert book.record(key, "c", 2.0, 1) == 2.0  # not recorded; its own demand counts
    assert time.perf_counter() - start < 5.0
    assert len(book) == 100_000
    book.record(-1, "d", 1.0, 600 * MS)  # a later report: a sweep is due and frees the stale
    assert len(book) == 1


def test_stale_client_stops_taking_a_share() -> None:
    book: DemandBook[str] = DemandBook(300 * MS)
    assert book.record("k", "a", 50.0, 0) == 50.0
    assert book.record("k", "b", 50.0, 100 * MS) == 100.0
    assert book.record("k", "b", 50.0, 500 * MS) == 50.0  # a expired
    book.sweep(10 * NS_PER_SECOND)
    assert len(book) == 0


@FAST
@given(debt=st.integers(0, 500), amount=st.integers(1, 100))
def test_reject_lasts_until_the_debt_is_repaid(debt: int, amount: int) -> None:
    limit = Limit(amount, Unit.SECOND)
    token_ns = -(-NS_PER_SECOND // amount)
    to_one_token = (debt + 1) * NS_PER_SECOND // amount
    repaid = until_repaid(Instruction(to_one_token, UNBOUNDED, 1), limit)
    assert 0 <= repaid.reject_for_ns <= debt * NS_PER_SECOND // amount
    assert repaid.reject_for_ns >= to_one_token - token_ns


def test_an_entry_counts_for_its_own_ttl_when_longer_than_the_books() -> None:
    """A client reporting every second stays in the total between its reports."""
    book: DemandBook[str] = DemandBook(500 * MS)
    book.record("k", "slow", 100.0, 0, ttl_ns=3 * NS_PER_SECOND)
    book.record("k", "fast", 100.0, 0)
    assert book.record("k", "other", 0.0, 2 * NS_PER_SECOND) == 100.0  # fast expired, slow not
    assert book.record("k", "other", 0.0, 4 * NS_PER_SECOND) == 0.0


def test_clients_counts_the_asking_client_once() -> None:
    book: DemandBook[str] = DemandBook(500 * MS)
    assert book.clients("k", "a") == 1
    book.record("k", "a", 1.0, 0)
    book.record("k", "b", 1.0, 0)
    assert book.clients("k", "a") == 2
    assert book.clients("k", "c") == 3
