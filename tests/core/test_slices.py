"""Slices of the hash space, assignments and their generations."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, single_owner

from .strategies import THOROUGH

HALF = HASH_SPACE // 2
QUARTER = HASH_SPACE // 4
ABAB = Assignment(Generation(1, 2), (0, QUARTER, HALF, 3 * QUARTER), ("a", "b", "a", "b"))


@pytest.mark.parametrize(
    ("key_hash", "owner"),
    [
        (0, "a"),
        (QUARTER - 1, "a"),
        (QUARTER, "b"),  # a start belongs to the slice it starts
        (HALF - 1, "b"),
        (HALF, "a"),
        (3 * QUARTER, "b"),
        (HASH_SPACE - 1, "b"),
    ],
)
def test_owner_of_boundaries(key_hash: int, owner: str) -> None:
    assert ABAB.owner_of(key_hash) == owner


@pytest.mark.parametrize("key_hash", [-1, HASH_SPACE, HASH_SPACE + 5])
def test_owner_of_refuses_hashes_outside_the_space(key_hash: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        ABAB.owner_of(key_hash)


def test_slices_of_and_servers() -> None:
    assert ABAB.slices_of("a") == (Slice(0, QUARTER), Slice(HALF, 3 * QUARTER))
    assert ABAB.slices_of("b") == (Slice(QUARTER, HALF), Slice(3 * QUARTER, HASH_SPACE))
    assert ABAB.slices_of("c") == ()
    assert ABAB.servers == frozenset({"a", "b"})


def test_slice_is_half_open() -> None:
    piece = Slice(10, 20)
    assert 10 in piece
    assert 19 in piece
    assert 20 not in piece
    assert 9 not in piece
    assert "15" not in piece


def test_single_owner_covers_everything() -> None:
    one = single_owner("127.0.0.1:7000")
    assert one.generation == Generation()
    assert one.owner_of(0) == one.owner_of(HASH_SPACE - 1) == "127.0.0.1:7000"
    assert one.slices_of("127.0.0.1:7000") == (Slice(0, HASH_SPACE),)
    assert single_owner("x", Generation(3, 4)).generation == Generation(3, 4)


@pytest.mark.parametrize(
    ("starts", "owners", "message"),
    [
        ((), (), "from 0"),
        ((1,), ("a",), "from 0"),
        ((0, 5), ("a",), "align"),
        ((0,), ("a", "b"), "align"),
        ((0, 5, 5), ("a", "b", "c"), "ascending"),
        ((0, 7, 5), ("a", "b", "c"), "ascending"),
        ((0, HASH_SPACE), ("a", "b"), "64-bit"),
    ],
)
def test_assignment_validation(
    starts: tuple[int, ...], owners: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Assignment(Generation(), starts, owners)


def test_assignments_are_values() -> None:
    same = Assignment(Generation(1, 2), ABAB.starts, ABAB.owners)
    assert same == ABAB
    assert hash(same) == hash(ABAB)
    assert Assignment(Generation(1, 3), ABAB.starts, ABAB.owners) != ABAB


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        (Generation(0, 0), Generation(0, 1)),
        (Generation(1, 99), Generation(2, 0)),  # a new incarnation beats every number
        (Generation(1, 5), Generation(1, 6)),
    ],
)
def test_generation_order(older: Generation, newer: Generation) -> None:
    assert older < newer
    assert max(newer, older) == newer
    assert sorted([newer, older]) == [older, newer]


assignments = st.lists(st.integers(1, HASH_SPACE - 1), max_size=12, unique=True).flatmap(
    lambda cuts: st.tuples(
        st.just((0, *sorted(cuts))),
        st.lists(st.sampled_from("abcd"), min_size=len(cuts) + 1, max_size=len(cuts) + 1),
    )
)


@THOROUGH
@given(assignments, st.lists(st.integers(0, HASH_SPACE - 1), max_size=20))
def test_every_hash_has_exactly_the_owner_of_the_slice_holding_it(
    layout: tuple[tuple[int, ...], list[str]], hashes: list[int]
) -> None:
    starts, owners = layout
    assignment = Assignment(Generation(), starts, tuple(owners))
    pieces = [(s, owner) for owner in assignment.servers for s in assignment.slices_of(owner)]
    # The slices tile the space: no gap, no overlap.
    ordered = sorted(pieces, key=lambda p: p[0].low)
    assert ordered[0][0].low == 0
    assert ordered[-1][0].high == HASH_SPACE
    assert all(a.high == b.low for (a, _), (b, _) in pairwise(ordered))
    for key_hash in [*hashes, *starts, *(s - 1 for s in starts[1:])]:
        holders = [owner for piece, owner in pieces if key_hash in piece]
        assert holders == [assignment.owner_of(key_hash)]
