"""One rebalancing round: examples, then the properties every round must keep."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.assignment import moves, pieces
from ratekeeper.core.rebalance import (
    RebalanceSettings,
    imbalance,
    rebalance,
    server_loads,
)
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice, even_split

from .strategies import THOROUGH
from .test_assignment import assignments, covers_once

HALF = HASH_SPACE // 2
QUARTER = HASH_SPACE // 4
#: No cap on moves, so the band is always reachable when the load can be cut finely enough.
FREE = RebalanceSettings(max_moved_fraction=1.0)
#: The same, with so few slices allowed that cold neighbours of two owners get joined.
FREE_FEW = RebalanceSettings(max_moved_fraction=1.0, max_slices_per_server=2)


def uniform(total: float = 1.0) -> LoadMap:
    return LoadMap.of([(Slice(0, HASH_SPACE), total)])


def test_a_balanced_assignment_is_kept_as_it_is() -> None:
    current = even_split(["a", "b", "c", "d"], Generation(1, 7))
    # one slice per server, each exactly at the mean and under the split threshold of... none:
    # the mean is the whole slice, so the split threshold is a twentieth of it.
    out = rebalance(current, ["a", "b", "c", "d"], LoadMap.of([]), FREE)
    again = rebalance(out.assignment, ["a", "b", "c", "d"], LoadMap.of([]), FREE)
    assert again.assignment is out.assignment
    assert (again.moved, again.reassigned, again.filled, again.splits) == (0, 0, 0, 0)


def test_the_slices_of_a_departed_server_move_and_nothing_else_does() -> None:
    current = even_split(["a", "b", "c", "d"], Generation(1, 7))
    out = rebalance(current, ["a", "b", "c"], uniform(4.0))
    assert out.assignment.generation == Generation(1, 8)
    assert "d" not in out.assignment.servers
    assert out.reassigned == pytest.approx(1.0)
    assert out.moved == 0
    assert {m.source for m in moves(current, out.assignment)} == {"d"}
    assert imbalance(out.assignment, uniform(4.0)) <= 1.05 + 1e-9


def test_a_new_server_is_filled_to_the_band() -> None:
    current = even_split(["a", "b", "c"], Generation(1, 1))
    out = rebalance(current, ["a", "b", "c", "d"], uniform(3.0), FREE)
    loads = server_loads(out.assignment, uniform(3.0))
    assert set(loads) == {"a", "b", "c", "d"}
    assert min(loads.values()) >= 0.75 * 0.95 - 1e-9
    assert {m.target for m in moves(current, out.assignment)} == {"d"}


def test_the_move_budget_caps_churn_between_servers_that_stay() -> None:
    current = Assignment(Generation(1, 1), (0, QUARTER), ("a", "b"))
    settings = RebalanceSettings(max_moved_fraction=0.05)
    out = rebalance(current, ["a", "b"], uniform(4.0), settings)
    assert 0.1 < out.moved <= 0.05 * 4.0
    assert imbalance(out.assignment, uniform(4.0)) > 1.05  # the rest waits for later rounds


def test_a_new_server_is_filled_in_one_round_whatever_the_budget() -> None:
    current = even_split(["a", "b"], Generation(1, 1))
    settings = RebalanceSettings(max_moved_fraction=0.0)
    out = rebalance(current, ["a", "b", "c", "d"], uniform(4.0), settings)
    assert out.moved == 0
    assert out.filled == pytest.approx(2.0, rel=0.06)
    assert imbalance(out.assignment, uniform(4.0)) <= 1.05 + 1e-9


def test_a_hot_key_is_cut_out_alone_and_its_slice_split() -> None:
    hot = QUARTER + 999
    load = LoadMap.of([(Slice(0, HASH_SPACE), 10.0), (Slice(hot, hot + 1), 4.0)])
    out = rebalance(single := even_split(["a", "b"], Generation(0, 0)), ["a", "b"], load)
    assert Slice(hot, hot + 1) in [p for p, _ in pieces(out.assignment)]
    assert out.splits > 0
    assert single.generation < out.assignment.generation


def test_two_hot_keys_on_one_server_are_separated() -> None:
    # each key is too big for any other server's room: only a swap in several moves helps
    k1, k2 = HASH_SPACE // 16 + 5, HASH_SPACE // 8 + 7
    load = LoadMap.of(
        [(Slice(0, HASH_SPACE), 10.0), (Slice(k1, k1 + 1), 3.0), (Slice(k2, k2 + 1), 3.0)]
    )
    out = rebalance(even_split(["a", "b", "c", "d"], Generation(1, 1)), "abcd", load, FREE)
    assert out.assignment.owner_of(k1) != out.assignment.owner_of(k2)
    assert imbalance(out.assignment, load) <= 1.05 + 1e-9


def test_cold_neighbours_of_one_owner_merge() -> None:
    starts = tuple(i * (HASH_SPACE // 8) for i in range(8))
    current = Assignment(Generation(2, 2), starts, ("a",) * 4 + ("b",) * 4)
    # all the load sits in one slice of each owner (which splits); the cold runs join up
    load = LoadMap.of([(Slice(0, starts[1]), 5.0), (Slice(starts[4], starts[5]), 5.0)])
    out = rebalance(current, ["a", "b"], load)
    assert out.merges == 4
    kept = pieces(out.assignment)
    assert (Slice(starts[1], starts[4]), "a") in kept
    assert (Slice(starts[5], HASH_SPACE), "b") in kept
    assert server_loads(out.assignment, load) == pytest.approx({"a": 5.0, "b": 5.0})


def test_no_load_at_all_is_read_as_load_by_width() -> None:
    out = rebalance(even_split(["a"]), ["a", "b", "c", "d"], LoadMap.of([]))
    assert imbalance(out.assignment, uniform(), "abcd") <= 1.05 + 1e-9
    assert out.total == 0
    assert out.moved == 0  # no load reported, so none moved, whatever the guess was


def test_too_many_slices_join_cold_neighbours_across_owners() -> None:
    starts = tuple(i * (HASH_SPACE // 16) for i in range(16))
    current = Assignment(Generation(1, 1), starts, ("a", "b") * 8)
    load = LoadMap.of([(Slice(0, HASH_SPACE), 16.0)])
    settings = RebalanceSettings(
        tolerance=0.2,
        split_fraction=0.25,  # a joined pair carries a quarter of the mean: it stays joined
        merge_fraction=0.1,
        max_slices_per_server=4,
        max_moved_fraction=1.0,
    )
    out = rebalance(current, ["a", "b"], load, settings)
    assert len(out.assignment.starts) == 8
    assert out.merges == 8
    assert out.moved == pytest.approx(8.0)  # one slice of each joined pair changed owner
    assert imbalance(out.assignment, load) == pytest.approx(1.0)  # alternately, to stay balanced


def test_the_generation_can_be_named() -> None:
    out = rebalance(even_split(["a"]), ["b"], uniform(), generation=Generation(5, 0))
    assert out.assignment.generation == Generation(5, 0)


def test_someone_must_be_healthy() -> None:
    with pytest.raises(ValueError, match="at least one healthy"):
        rebalance(even_split(["a"]), [], uniform())


def test_imbalance_counts_servers_that_own_nothing() -> None:
    half = even_split(["a", "b"])
    assert imbalance(half, uniform()) == pytest.approx(1.0)
    assert imbalance(half, uniform(), ["c", "d"]) == pytest.approx(2.0)
    assert imbalance(half, LoadMap.of([])) == 1.0


#: Load maps whose entries are all wide, so any slice can be cut finely enough to fit the band.
wide_loads = st.lists(st.integers(1, 255).map(lambda i: i << 56), max_size=8, unique=True).flatmap(
    lambda cuts: st.lists(st.floats(0, 100), min_size=len(cuts) + 1, max_size=len(cuts) + 1).map(
        lambda weights: LoadMap.of(
            (Slice(a, b), w)
            for (a, b), w in zip(pairwise([0, *sorted(cuts), HASH_SPACE]), weights, strict=True)
        )
    )
)
healthy_sets = st.sets(st.sampled_from("abcdef"), min_size=1)


@THOROUGH
@given(assignments(), healthy_sets, wide_loads, st.sampled_from([FREE, FREE_FEW]))
def test_a_round_keeps_every_promise(
    current: Assignment, healthy: set[str], load: LoadMap, settings: RebalanceSettings
) -> None:
    out = rebalance(current, healthy, load, settings)
    nxt = out.assignment
    assert covers_once(nxt)
    assert nxt.servers <= healthy  # departed servers own nothing
    assert nxt is current or nxt.generation > current.generation
    loads = server_loads(nxt, load, healthy)
    mean = load.total / len(healthy)
    eps = 1e-9 * max(load.total, 1)
    assert max(loads.values()) <= mean * (1 + FREE.tolerance) + eps
    assert min(loads.values()) >= mean * (1 - FREE.tolerance) - eps
    # the churn it reports is the churn there is
    found = moves(current, nxt)
    stay = healthy & current.servers
    moved = sum(load.load_in(m.slice) for m in found if m.source in stay and m.target in stay)
    filled = sum(load.load_in(m.slice) for m in found if m.source in stay and m.target not in stay)
    gone = sum(load.load_in(p) for p, owner in pieces(current) if owner not in healthy)
    assert out.moved == pytest.approx(moved, rel=1e-6, abs=eps)
    assert out.filled == pytest.approx(filled, rel=1e-6, abs=eps)
    assert out.reassigned == pytest.approx(gone, rel=1e-6, abs=eps)


@THOROUGH
@given(assignments(), healthy_sets, wide_loads, st.floats(0, 0.5))
def test_churn_from_servers_that_stay_is_capped(
    current: Assignment, healthy: set[str], load: LoadMap, fraction: float
) -> None:
    settings = RebalanceSettings(max_moved_fraction=fraction)
    out = rebalance(current, healthy, load, settings)
    stay = healthy & current.servers
    found = moves(current, out.assignment)
    moved = sum(load.load_in(m.slice) for m in found if m.source in stay and m.target in stay)
    assert moved <= fraction * load.total + 1e-9 * max(load.total, 1)


@THOROUGH
@given(assignments(), healthy_sets, wide_loads)
def test_a_round_is_deterministic_and_settles(
    current: Assignment, healthy: set[str], load: LoadMap
) -> None:
    first = rebalance(current, sorted(healthy), load, FREE)
    assert rebalance(current, sorted(healthy, reverse=True), load, FREE) == first
    # with the same load and servers, the next round has nothing left to move
    second = rebalance(first.assignment, healthy, load, FREE)
    assert second.moved == 0
    assert second.reassigned == 0
