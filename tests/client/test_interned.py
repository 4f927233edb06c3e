"""Compact reports: a key goes in full once, then by id; the server's answers leave out the
unchanged; an id the server does not know is sent in full again with its counts."""

from __future__ import annotations

import time

import grpc

from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.options import LimiterOptions
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import Limit, Unit
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import report_call

from .conftest import ReportServer

POLICY = PolicyTree.from_mapping(
    {
        "domain": "d",
        "descriptors": [
            {"key": "key", "rate_limit": {"unit": "second", "requests_per_unit": 1000}}
        ],
    }
)
COMPACT = LimiterOptions(domain="d", compact_reports=True)


def test_keys_go_by_id_after_their_first_report_and_count_once() -> None:
    server = ReportServer(POLICY)
    try:
        machine = LimiterMachine(server.address, COMPACT)
        sizes = []
        with grpc.insecure_channel(server.address) as channel:
            call = report_call(channel)
            for _ in range(4):
                now = time.monotonic_ns()
                for key in ("a", "b", "c"):
                    machine.decide(key, 1, now)
                (out,) = machine.collect(now)
                answer = call(out.request, timeout=10)
                machine.answered(out.address, answer, time.monotonic_ns())
                sizes.append((len(out.request.keys), len(out.request.known_ids)))
                sizes.append(len(answer.changed))
        # in full, then by id
        assert sizes[0] == (3, 0)
        assert all(size == (0, 3) for size in sizes[2::2])
        assert sizes[-1] == 0  # unchanged (unbounded, 1000/s): left out
        applied = server.service.applied()
        total = sum(k.admitted for r in applied for k in r.keys)
        total += sum(sum(r.known_admitted) for r in applied)
        assert total == 12
        assert all(st.limits == (Limit(1000, Unit.SECOND),) for st in machine.states.values())
        assert all(st.instructed_until == 0 for st in machine.states.values())  # unbounded
    finally:
        server.close()


def test_an_id_the_server_does_not_know_is_sent_in_full_with_its_counts() -> None:
    machine = LimiterMachine("s:1", COMPACT)
    now = 1_000_000_000
    machine.decide("a", 1, now)
    (first,) = machine.collect(now)
    (key,) = first.request.keys
    machine.answered("s:1", pb.ReportResponse(instructions=[pb.KeyInstruction()]), now)
    machine.decide("a", 2, now)
    (second,) = machine.collect(now + 1)
    assert list(second.request.known_ids) == [key.key_id]
    assert list(second.request.known_admitted) == [2]
    assert second.request.omit_unchanged
    machine.answered("s:1", pb.ReportResponse(unknown_ids=[key.key_id]), now)
    machine.decide("a", 1, now)
    (third,) = machine.collect(now + 2)
    (again,) = third.request.keys
    assert again.admitted == 3  # the unapplied hits and the new one
    assert again.key_id
    assert again.key_id != key.key_id
    assert not third.request.known_ids
