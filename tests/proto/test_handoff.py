"""Hand-off transfers survive the wire in bounded chunks, and malformed ones are refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.store import Counter, CounterSnapshot, Snapshot
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE, Generation
from ratekeeper.errors import RequestError
from ratekeeper.proto.handoff import Transfer, transfer_chunks, transfer_from_wire
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb

GEN = Generation(2, 7)
BIG = Limit(10**9, Unit.YEAR, burst=10**10)  # a level of ~3e26 token-ns: beyond 64 bits

limits = st.sampled_from(
    [
        Limit(5),
        Limit(100, Unit.MINUTE, burst=300),
        BIG,
        Limit(3, Unit.HOUR, algorithm=Algorithm.FIXED_WINDOW),
        Limit(7, Unit.SECOND, 2, algorithm=Algorithm.SLIDING_WINDOW),
    ]
)
ints = st.integers(-(2**100), 2**100)


@st.composite
def counter_snapshots(draw: st.DrawFn, index: int) -> CounterSnapshot:
    limit = draw(limits)
    counter = Counter("d", (("user", f"u{index}"), ("path", draw(st.text(max_size=8)))), limit)
    width = 3 if limit.algorithm is Algorithm.SLIDING_WINDOW else 2
    return CounterSnapshot(counter, tuple(draw(ints) for _ in range(width)))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    n = draw(st.integers(0, 30))
    return Snapshot(0, HASH_SPACE, tuple(draw(counter_snapshots(i)) for i in range(n)))


@settings(max_examples=50, deadline=None)
@given(snapshots(), st.integers(200, 5000))
def test_a_snapshot_round_trips_in_chunks_of_bounded_size(snapshot: Snapshot, budget: int) -> None:
    wires = transfer_chunks(GEN, "a:1", snapshot, budget)
    transfers = [
        transfer_from_wire(pb.TransferRequest.FromString(w.SerializeToString())) for w in wires
    ]
    assert [t.chunk for t in transfers] == list(range(len(wires)))
    assert {t.chunks for t in transfers} == {len(wires)}
    assert all(t.generation == GEN and t.source == "a:1" for t in transfers)
    assert all(t.slice == transfers[0].slice for t in transfers)
    assert tuple(c for t in transfers for c in t.snapshot.counters) == snapshot.counters
    for wire in wires:
        assert len(wire.counters) == 1 or wire.ByteSize() <= budget + 100


def test_an_empty_snapshot_is_one_call() -> None:
    [wire] = transfer_chunks(GEN, "a:1", Snapshot(5, 9))
    assert transfer_from_wire(wire) == Transfer(GEN, "a:1", Snapshot(5, 9), 0, 1)


def _valid() -> pb.TransferRequest:
    counter = Counter("d", (("k", "v"),), Limit(5))
    return transfer_chunks(
        GEN, "a:1", Snapshot(0, HASH_SPACE, (CounterSnapshot(counter, (1, 2)),))
    )[0]


def _broken(change: str) -> pb.TransferRequest:
    wire = _valid()
    if change == "empty range":
        wire.low, wire.high = 9, 9
    elif change == "no source":
        wire.source = ""
    elif change == "chunk out of count":
        wire.chunk, wire.chunks = 1, 1
    elif change == "no chunks":
        wire.chunks = 0
    elif change == "bad limit":
        wire.counters[0].limit.unit_seconds = 7
    elif change == "wrong width":
        wire.counters[0].state.append(b"\x01")
    elif change == "huge field":
        wire.counters[0].state[0] = b"\x01" * 17
    elif change == "cold outside the range":
        wire.low = 1 << 40
        wire.counters.pop()
        wire.cold.add(low=0, high=5, age_ns=1)
    elif change == "empty cold range":
        wire.cold.add(low=7, high=7, age_ns=1)
    elif change == "outside the range":
        key_hash = Counter("d", (("k", "v"),), Limit(5)).key_hash
        wire.low, wire.high = (key_hash + 1, 0) if key_hash + 1 < HASH_SPACE else (0, key_hash)
    return wire


@pytest.mark.parametrize(
    "change",
    [
        "empty range",
        "no source",
        "chunk out of count",
        "no chunks",
        "bad limit",
        "wrong width",
        "huge field",
        "outside the range",
        "cold outside the range",
        "empty cold range",
    ],
)
def test_malformed_transfers_are_refused(change: str) -> None:
    transfer_from_wire(_valid())  # the unbroken one is fine
    with pytest.raises(RequestError, match="transfer"):
        transfer_from_wire(_broken(change))


def test_a_level_beyond_64_bits_survives() -> None:
    counter = Counter("d", (("k", "v"),), BIG)
    state = (BIG.capacity * BIG.period_ns, -(2**90))
    [wire] = transfer_chunks(
        GEN, "a:1", Snapshot(0, HASH_SPACE, (CounterSnapshot(counter, state),))
    )
    assert transfer_from_wire(wire).snapshot.counters[0].state == state


def test_cold_parts_travel_in_every_chunk() -> None:
    counters = tuple(
        CounterSnapshot(Counter("d", (("k", f"v{i}"),), Limit(5)), (1, 2)) for i in range(40)
    )
    cold = ((10, 20, 3), (HASH_SPACE - 5, HASH_SPACE, 0))
    wires = transfer_chunks(GEN, "a:1", Snapshot(0, HASH_SPACE, counters, cold), 500)
    assert len(wires) > 1
    assert all(transfer_from_wire(w).snapshot.cold == cold for w in wires)
