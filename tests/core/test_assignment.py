"""Pieces, building from pieces, moves between assignments, generations and adoption."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.assignment import (
    Move,
    adopt,
    coalesced,
    from_pieces,
    moves,
    next_generation,
    pieces,
    same_layout,
    width,
)
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split

from .strategies import THOROUGH

QUARTER = HASH_SPACE // 4
HALF = HASH_SPACE // 2

#: Cut points drawn from a coarse grid as well as anywhere, so two drawn assignments often share
#: boundaries (the interesting case for diffs and moves) and sometimes split each other's slices.
cut_points = st.integers(1, 15).map(lambda i: i * (HASH_SPACE // 16)) | st.integers(
    1, HASH_SPACE - 1
)


@st.composite
def assignments(draw: st.DrawFn, owners: str = "abcd") -> Assignment:
    """A random assignment of a few slices to a few owners."""
    cuts = draw(st.lists(cut_points, max_size=10, unique=True))
    starts = (0, *sorted(cuts))
    names = draw(st.lists(st.sampled_from(owners), min_size=len(starts), max_size=len(starts)))
    generation = Generation(draw(st.integers(0, 3)), draw(st.integers(0, 1000)))
    return Assignment(generation, starts, tuple(names))


def covers_once(assignment: Assignment) -> bool:
    """Whether the slices of ``assignment`` tile the hash space: no gap, no overlap."""
    owned = pieces(assignment)
    return (
        owned[0][0].low == 0
        and owned[-1][0].high == HASH_SPACE
        and all(a.high == b.low for (a, _), (b, _) in pairwise(owned))
        and sum(width(p) for p, _ in owned) == HASH_SPACE
    )


def test_pieces_in_hash_order() -> None:
    assignment = Assignment(Generation(), (0, QUARTER, HALF), ("a", "b", "a"))
    assert pieces(assignment) == (
        (Slice(0, QUARTER), "a"),
        (Slice(QUARTER, HALF), "b"),
        (Slice(HALF, HASH_SPACE), "a"),
    )


def test_from_pieces_accepts_any_order() -> None:
    owned = [(Slice(HALF, HASH_SPACE), "b"), (Slice(0, HALF), "a")]
    assert from_pieces(Generation(1, 1), owned) == Assignment(
        Generation(1, 1), (0, HALF), ("a", "b")
    )


@pytest.mark.parametrize(
    ("owned", "message"),
    [
        ([], "at least one"),
        ([(Slice(1, HASH_SPACE), "a")], r"\[0, 1\) have no owner"),
        ([(Slice(0, HALF), "a")], "have no owner"),
        ([(Slice(0, QUARTER), "a"), (Slice(HALF, HASH_SPACE), "b")], "have no owner"),
        ([(Slice(0, HALF), "a"), (Slice(QUARTER, HASH_SPACE), "b")], "two owners"),
        (
            [(Slice(0, HALF), "a"), (Slice(HALF, HALF), "c"), (Slice(HALF, HASH_SPACE), "b")],
            "empty",
        ),
        ([(Slice(0, HASH_SPACE), "a"), (Slice(0, HASH_SPACE), "b")], "two owners"),
    ],
)
def test_from_pieces_refuses_gaps_overlaps_and_empties(
    owned: list[tuple[Slice, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        from_pieces(Generation(), owned)


@THOROUGH
@given(assignments())
def test_pieces_round_trip_and_cover_the_space_once(assignment: Assignment) -> None:
    assert covers_once(assignment)
    assert from_pieces(assignment.generation, reversed(pieces(assignment))) == assignment


@THOROUGH
@given(assignments(), st.lists(st.integers(0, HASH_SPACE - 1), max_size=10))
def test_coalesced_routes_the_same_with_no_equal_neighbours(
    assignment: Assignment, hashes: list[int]
) -> None:
    joined = coalesced(assignment)
    assert all(a != b for a, b in pairwise(joined.owners))
    for key_hash in [*hashes, *assignment.starts]:
        assert joined.owner_of(key_hash) == assignment.owner_of(key_hash)


def test_moves_ignore_splits_and_merge_ranges() -> None:
    before = Assignment(Generation(), (0, HALF), ("a", "b"))
    # a splits its half (no move), b's half goes to c in two slices (one move)
    after = Assignment(Generation(0, 1), (0, QUARTER, HALF, 3 * QUARTER), ("a", "a", "c", "c"))
    assert moves(before, after) == (Move(Slice(HALF, HASH_SPACE), "b", "c"),)
    assert moves(before, before) == ()


def test_moves_name_each_source_and_target() -> None:
    before = even_split(["a", "b", "c", "d"])
    after = Assignment(Generation(0, 1), before.starts, ("b", "b", "a", "a"))
    assert moves(before, after) == (
        Move(Slice(0, QUARTER), "a", "b"),
        Move(Slice(HALF, 3 * QUARTER), "c", "a"),
        Move(Slice(3 * QUARTER, HASH_SPACE), "d", "a"),
    )


@THOROUGH
@given(assignments(), assignments(), st.lists(st.integers(0, HASH_SPACE - 1), max_size=10))
def test_moves_are_exactly_where_owners_differ(
    before: Assignment, after: Assignment, hashes: list[int]
) -> None:
    found = moves(before, after)
    assert all(a.slice.high <= b.slice.low for a, b in pairwise(found))
    assert all(
        not (a.slice.high == b.slice.low and (a.source, a.target) == (b.source, b.target))
        for a, b in pairwise(found)
    )
    probes = [*hashes, *before.starts, *after.starts, *(s - 1 for s in after.starts[1:])]
    for key_hash in probes:
        holding = [m for m in found if key_hash in m.slice]
        if before.owner_of(key_hash) == after.owner_of(key_hash):
            assert holding == []
        else:
            assert [(m.source, m.target) for m in holding] == [
                (before.owner_of(key_hash), after.owner_of(key_hash))
            ]


def test_same_layout_ignores_the_generation() -> None:
    a = even_split(["a", "b"], Generation(0, 1))
    assert same_layout(a, even_split(["a", "b"], Generation(4, 4)))
    assert not same_layout(a, even_split(["b", "a"]))


def test_next_generation_stays_in_the_incarnation() -> None:
    assert next_generation(Generation(3, 9)) == Generation(3, 10)
    assert next_generation(Generation(3, 9)) > Generation(3, 9)


def test_adopt_keeps_the_higher_generation() -> None:
    old = even_split(["a"], Generation(1, 5))
    new = even_split(["b"], Generation(2, 0))
    assert adopt(None, old) is old
    assert adopt(old, new) is new
    assert adopt(new, old) is new
    twin = even_split(["a"], Generation(1, 5))
    assert adopt(old, twin) is old
