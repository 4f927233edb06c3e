"""The load map the assigner builds from reports."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import HASH_SPACE, Slice

from .strategies import THOROUGH

HALF = HASH_SPACE // 2
QUARTER = HASH_SPACE // 4


def test_an_empty_map_carries_nothing() -> None:
    empty = LoadMap.of([])
    assert empty == LoadMap()
    assert empty.total == 0
    assert empty.load_in(Slice(0, HASH_SPACE)) == 0


def test_load_spreads_evenly_within_an_entry() -> None:
    load = LoadMap.of([(Slice(0, HALF), 100.0)])
    assert load.total == pytest.approx(100)
    assert load.load_in(Slice(0, QUARTER)) == pytest.approx(50)
    assert load.load_in(Slice(QUARTER, HASH_SPACE)) == pytest.approx(50)
    assert load.load_in(Slice(HALF, HASH_SPACE)) == 0


def test_overlapping_entries_add_up() -> None:
    # two servers both reported the middle half around a change of owner
    load = LoadMap.of([(Slice(0, HALF), 10.0), (Slice(QUARTER, 3 * QUARTER), 10.0)])
    assert load.total == pytest.approx(20)
    assert load.load_in(Slice(QUARTER, HALF)) == pytest.approx(10)


def test_a_hot_key_leaves_no_crumbs_in_a_cold_neighbour() -> None:
    hot = 12345
    load = LoadMap.of([(Slice(0, HASH_SPACE), 1.0), (Slice(hot, hot + 1), 1e9)])
    assert load.load_in(Slice(hot, hot + 1)) == pytest.approx(1e9)
    assert load.load_in(Slice(HALF, HASH_SPACE)) == pytest.approx(0.5, rel=1e-9)
    assert load.cuts_in(Slice(0, HASH_SPACE)) == (hot, hot + 1)
    assert load.cuts_in(Slice(hot, hot + 1)) == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((Slice(5, 5), 1.0), "not a slice"),
        ((Slice(0, HASH_SPACE + 1), 1.0), "not a slice"),
        ((Slice(0, 5), -1.0), "negative"),
    ],
)
def test_bad_entries_are_refused(entry: tuple[Slice, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadMap.of([entry])


@pytest.mark.parametrize(
    ("bounds", "density"),
    [
        ((0, HASH_SPACE), ()),
        ((1, HASH_SPACE), (1.0,)),
        ((0, 5), (1.0,)),
        ((0, HASH_SPACE), (-1.0,)),
    ],
)
def test_malformed_maps_are_refused(bounds: tuple[int, ...], density: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="load"):
        LoadMap(bounds, density)


entries = st.lists(
    st.tuples(st.integers(0, HASH_SPACE - 2), st.integers(1, HASH_SPACE), st.floats(0, 1e6)),
    max_size=8,
).map(lambda rows: [(Slice(lo, max(lo + 1, min(hi, HASH_SPACE))), w) for lo, hi, w in rows])


@THOROUGH
@given(entries, st.lists(st.integers(1, HASH_SPACE - 1), max_size=6, unique=True))
def test_any_partition_sums_to_the_total(
    reported: list[tuple[Slice, float]], cuts: list[int]
) -> None:
    load = LoadMap.of(reported)
    bounds = [0, *sorted(cuts), HASH_SPACE]
    parts = [load.load_in(Slice(a, b)) for a, b in pairwise(bounds)]
    expected = sum(w for _, w in reported)
    assert load.total == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert sum(parts) == pytest.approx(expected, rel=1e-9, abs=1e-6)
