"""The dealt onset (``LimiterOptions(dealt_onset=True)``), by hand on passive machines: a fleet
meeting a cold key holds one bucket between them; the deal ends with the first answer after it
or grows back to the local bucket when no answer comes."""

from __future__ import annotations

import pytest

from ratekeeper.client import dealing
from ratekeeper.client.machine import LimiterMachine, LimiterOptions
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

MS = 1_000_000
T0 = 1000 * NS_PER_SECOND
SERVER = "s1:1"


def fleet_of(n: int, limit: str, dealt: bool = True) -> list[LimiterMachine]:
    """``n`` machines that have each run one cycle and heard their fleet and slot."""
    machines = []
    for slot in range(n):
        options = LimiterOptions(limit=limit, client_id=f"c{slot}", dealt_onset=dealt)
        m = LimiterMachine(SERVER, options)
        for out in m.collect(T0):
            m.answered(out.address, pb.ReportResponse(fleet=n, slot=slot), T0)
        machines.append(m)
    return machines


def admitted(m: LimiterMachine, key: str, now: int, hits: int) -> int:
    return sum(m.decide(key, 1, now).allowed for _ in range(hits))


def test_a_fleet_meeting_a_cold_key_admits_one_bucket() -> None:
    fleet = fleet_of(40, "50/s")
    assert sum(admitted(m, "k", T0 + MS, 10) for m in fleet) == 50
    undealt = fleet_of(40, "50/s", dealt=False)
    assert sum(admitted(m, "k", T0 + MS, 10) for m in undealt) == 40 * 10


def test_refill_tokens_are_dealt_from_the_next_cycle() -> None:
    fleet = fleet_of(40, "10/s")
    now = T0 + 50 * MS
    assert sum(admitted(m, "k", now, 5) for m in fleet) == 10  # the burst
    # the next cycle is at T0 + 100 ms: one refill token each 100 ms from there, fleet-wide
    later = T0 + 100 * MS + 350 * MS
    assert sum(admitted(m, "k", later, 5) for m in fleet) == 3


def test_an_answer_after_the_deal_within_the_policy_gives_the_bucket_back() -> None:
    (m, *_) = fleet_of(40, "5/s")
    rejected_first = not m.decide("k", 1, T0 + MS).allowed or not m.decide("k", 1, T0 + MS).allowed
    assert rejected_first  # its share is under one token of burst, or one at most
    for now in (T0 + 100 * MS, T0 + 200 * MS):
        m.decide("k", 1, now - 50 * MS)  # counts to report, so each cycle's answer covers it
        for out in m.collect(now):
            unbounded = pb.ReportResponse(
                instructions=[pb.KeyInstruction(valid_for_ns=300 * MS)] * len(out.request.keys)
            )
            m.answered(out.address, unbounded, now + MS)
    assert m.decide("k", 1, T0 + 202 * MS).allowed  # the deal is over: no future is owed


def test_the_share_grows_back_when_the_server_does_not_answer() -> None:
    (m, *_) = fleet_of(40, "5/s")
    m.decide("k", 1, T0 + MS)
    m.decide("k", 1, T0 + MS)
    for step in range(1, 5):
        now = T0 + step * 100 * MS
        for out in m.collect(now):
            m.failed(out.address, "down", now + 50 * MS)
    assert m.decide("k", 1, T0 + 401 * MS).allowed


def test_a_lone_client_is_dealt_nothing() -> None:
    (m,) = fleet_of(1, "5/s")
    assert admitted(m, "k", T0 + MS, 10) == 5


def unbounded(keys: int) -> pb.ReportResponse:
    return pb.ReportResponse(instructions=[pb.KeyInstruction(valid_for_ns=300 * MS)] * keys)


def test_a_key_whose_deal_ended_within_the_policy_is_not_dealt_again() -> None:
    fleet = fleet_of(40, "5/s")
    assert sum(m.decide("k", 1, T0 + MS).allowed for m in fleet) == 5  # one bucket of 5
    for step in range(1, 25):  # answers within the policy; the deals expire, the keys go idle
        now = T0 + step * 100 * MS
        for m in fleet:
            for out in m.collect(now):
                m.answered(out.address, unbounded(len(out.request.keys)), now + MS)
    assert all("k" not in m.states for m in fleet)  # dropped: the next hit makes a new state
    later = T0 + 5 * NS_PER_SECOND
    assert all(m.decide("k", 1, later).allowed for m in fleet)  # calm: the whole local bucket


def test_calm_keys_are_bounded_and_pruned_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dealing, "MAX_CALM_KEYS", 4)
    dealer = dealing.Dealer(100 * MS, 50 * MS)
    table = dealer._calm  # white box: dealt states hold this very table
    table.update({h: T0 + h * MS for h in range(6)})
    dealer.heard(SERVER, pb.ReportResponse(fleet=3, slot=1), T0 + 10 * MS)
    assert dealer._calm is table
    assert table == {4: T0 + 4 * MS, 5: T0 + 5 * MS}  # the newest half
