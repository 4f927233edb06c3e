"""Diffs, Watch updates and their plain shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from ratekeeper.core.assignment import next_generation, pieces
from ratekeeper.core.assignment_diff import (
    AssignmentDiff,
    apply_diff,
    apply_update,
    diff,
    update_for,
    update_from_plain,
    update_to_plain,
)
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split

from .strategies import THOROUGH
from .test_assignment import assignments

HALF = HASH_SPACE // 2
QUARTER = HASH_SPACE // 4

BEFORE = Assignment(Generation(1, 1), (0, HALF), ("a", "b"))
AFTER = Assignment(Generation(1, 2), (0, QUARTER, HALF), ("a", "c", "b"))


def test_diff_lists_only_changed_slices() -> None:
    change = diff(BEFORE, AFTER)
    assert change == AssignmentDiff(
        Generation(1, 1),
        Generation(1, 2),
        ((Slice(0, QUARTER), "a"), (Slice(QUARTER, HALF), "c")),
    )
    assert apply_diff(BEFORE, change) == AFTER


def test_a_diff_applies_only_to_its_base() -> None:
    change = diff(BEFORE, AFTER)
    with pytest.raises(ValueError, match=r"generation \[1, 1\], not \[1, 2\]"):
        apply_diff(AFTER, change)


@THOROUGH
@given(assignments(), assignments())
def test_diff_applied_to_a_gives_b(a: Assignment, b: Assignment) -> None:
    assert apply_diff(a, diff(a, b)) == b


@THOROUGH
@given(assignments(), assignments())
def test_diff_lists_no_slice_a_already_holds(a: Assignment, b: Assignment) -> None:
    change = diff(a, b)
    assert not set(pieces(a)) & set(change.changed)
    assert set(change.changed) <= set(pieces(b))


def test_update_for_a_caller_up_to_date_is_nothing() -> None:
    assert update_for(AFTER.generation, AFTER, {}) is None


def test_update_for_a_known_generation_is_a_diff() -> None:
    history = {BEFORE.generation: BEFORE}
    assert update_for(BEFORE.generation, AFTER, history) == diff(BEFORE, AFTER)


@pytest.mark.parametrize(
    "known", [None, Generation(0, 7), Generation(9, 9)], ids=["new", "forgotten", "ahead"]
)
def test_update_for_an_unknown_generation_is_the_whole(known: Generation | None) -> None:
    assert update_for(known, AFTER, {BEFORE.generation: BEFORE}) is AFTER


def test_update_for_prefers_the_whole_when_the_diff_is_not_smaller() -> None:
    everything_moves = Assignment(Generation(1, 3), (0, HALF), ("b", "a"))
    history = {BEFORE.generation: BEFORE}
    assert update_for(BEFORE.generation, everything_moves, history) is everything_moves


def test_apply_update_never_rolls_back() -> None:
    assert apply_update(None, BEFORE) is BEFORE
    assert apply_update(BEFORE, AFTER) is AFTER
    assert apply_update(AFTER, BEFORE) is AFTER
    assert apply_update(BEFORE, diff(BEFORE, AFTER)) == AFTER
    with pytest.raises(ValueError, match="needs the assignment"):
        apply_update(None, diff(BEFORE, AFTER))


@THOROUGH
@given(assignments(), assignments())
def test_a_watch_update_always_brings_the_caller_to_current(a: Assignment, b: Assignment) -> None:
    current = Assignment(next_generation(max(a.generation, b.generation)), b.starts, b.owners)
    update = update_for(a.generation, current, {a.generation: a})
    assert update is not None
    assert apply_update(a, update) == current


@THOROUGH
@given(assignments(), assignments())
def test_plain_forms_round_trip_through_json(a: Assignment, b: Assignment) -> None:
    for update in (a, diff(a, b)):
        plain = json.loads(json.dumps(update_to_plain(update)))
        assert update_from_plain(plain) == update


def test_plain_assignment_lists_each_server_once() -> None:
    plain = update_to_plain(even_split(["b", "a", "b", "a"], Generation(2, 5)))
    assert plain == {
        "generation": [2, 5],
        "servers": ["a", "b"],
        "starts": [0, QUARTER, HALF, 3 * QUARTER],
        "owners": [1, 0, 1, 0],
    }


GOOD_DIFF: dict[str, Any] = {
    "base": [1, 1],
    "generation": [1, 2],
    "servers": ["a"],
    "slices": [[0, 5, 0]],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"servers": "a"}, "servers"),
        ({"base": [1]}, "base"),
        ({"generation": [1, -2]}, "non-negative"),
        ({"generation": [True, 2]}, "integers"),
        ({"slices": [[0, 5]]}, "3 integers"),
        ({"slices": {"0": 1}}, "rows"),
        ({"slices": [[0, 5, 1]]}, "server index 1"),
        ({"slices": [[5, 5, 0]]}, "empty"),
    ],
)
def test_malformed_plain_diffs_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_from_plain({**GOOD_DIFF, **change})


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        ({"generation": [0, 0], "servers": ["a"], "starts": [0], "owners": [3]}, "index 3"),
        ({"generation": [0, 0], "servers": ["a"], "starts": [1], "owners": [0]}, "from 0"),
        ({"generation": [0, 0], "servers": ["a"], "owners": [0]}, "starts"),
    ],
)
def test_malformed_plain_assignments_are_refused(plain: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_from_plain(plain)
