"""The fleet a server hears from: dense, stable slots; expiry; a bound on memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.fleet_slots import FleetSlots

TTL = 300


def test_new_clients_take_the_next_slot_and_keep_it() -> None:
    fleet = FleetSlots(100)
    assert fleet.seen("a", 0, TTL) == (1, 0)
    assert fleet.seen("b", 10, TTL) == (2, 1)
    assert fleet.seen("a", 20, TTL) == (2, 0)
    assert fleet.seen("c", 30, TTL) == (3, 2)
    assert fleet.seen("b", 40, TTL) == (3, 1)


def test_a_silent_client_frees_its_slot_for_the_last_one() -> None:
    fleet = FleetSlots(100)
    for name in "abc":
        fleet.seen(name, 0, TTL)
    fleet.seen("b", 200, TTL)
    fleet.seen("c", 250, TTL)
    # "a" was last seen at 0: gone at 301; "c" (the last slot) moves into slot 0
    assert fleet.seen("c", 301, TTL) == (2, 0)
    assert fleet.seen("b", 302, TTL) == (2, 1)
    assert len(fleet) == 2


def test_memory_is_bounded_least_recently_seen_first() -> None:
    fleet = FleetSlots(2)
    fleet.seen("a", 0, TTL)
    fleet.seen("b", 1, TTL)
    assert fleet.seen("c", 2, TTL) == (2, 1)  # "a" forgotten, "b" moved into its slot
    assert fleet.seen("b", 3, TTL) == (2, 0)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 100)), max_size=200))
def test_slots_are_always_a_permutation_of_the_fleet(visits: list[tuple[int, int]]) -> None:
    fleet = FleetSlots(6)
    now = 0
    last: dict[str, int] = {}
    for client, step in visits:
        now += step
        name = f"c{client}"
        before = fleet._slots.get(name)  # white box: the invariant is internal
        n, slot = fleet.seen(name, now, TTL)
        last[name] = now
        assert 0 <= slot < n == len(fleet) <= 6
        assert sorted(fleet._slots.values()) == list(range(n))
        assert all(fleet._clients[s] == c for c, s in fleet._slots.items())
        if before is not None and len(last) <= 6 and all(now - t <= TTL for t in last.values()):
            assert slot == before  # nobody left: nobody moved
