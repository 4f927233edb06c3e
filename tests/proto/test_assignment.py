"""Assignments and diffs survive the wire, and malformed wire forms are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.assignment_diff import diff
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation
from ratekeeper.proto.assignment import update_from_wire, update_to_wire
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as pb

SERVERS = ("a:1", "b:2", "c:3")


@st.composite
def assignments(draw: st.DrawFn, number: int = 1) -> Assignment:
    cuts = draw(st.sets(st.integers(1, HASH_SPACE - 1), max_size=8))
    starts = (0, *sorted(cuts))
    owners = tuple(draw(st.sampled_from(SERVERS)) for _ in starts)
    return Assignment(Generation(3, number), starts, owners)


@given(assignments())
def test_a_whole_assignment_round_trips(assignment: Assignment) -> None:
    assert update_from_wire(update_to_wire(assignment)) == assignment


@given(assignments(1), assignments(2))
def test_a_diff_round_trips_including_the_last_slice(before: Assignment, after: Assignment) -> None:
    change = diff(before, after)
    assert update_from_wire(update_to_wire(change)) == change


def test_an_empty_update_is_none() -> None:
    assert update_from_wire(pb.AssignmentUpdate()) is None


@pytest.mark.parametrize(
    "wire",
    [
        pb.AssignmentUpdate(whole=pb.Assignment(servers=["a:1"], starts=[5], owners=[0])),
        pb.AssignmentUpdate(whole=pb.Assignment(servers=["a:1"], starts=[0], owners=[1])),
        pb.AssignmentUpdate(
            diff=pb.AssignmentDiff(servers=["a:1"], lows=[7], highs=[7], owners=[0])
        ),
        pb.AssignmentUpdate(
            diff=pb.AssignmentDiff(servers=["a:1"], lows=[1], highs=[], owners=[0])
        ),
        pb.AssignmentUpdate(diff=pb.AssignmentDiff(servers=[], lows=[1], highs=[2], owners=[0])),
    ],
)
def test_malformed_updates_are_refused(wire: pb.AssignmentUpdate) -> None:
    with pytest.raises(ValueError):
        update_from_wire(wire)
