"""SidecarStore: local decisions on the embedded client's keys, reported by its machine."""

from __future__ import annotations

import time

from ratekeeper.backends.store import Counter, Hit
from ratekeeper.client.keystate import apply_instruction
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.core.instructions import Instruction
from ratekeeper.core.limits import NS_PER_SECOND, parse_limits
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.sidecar.store import SidecarStore

PER_SECOND, PER_MINUTE = parse_limits("2/s; 3/minute")


def _store() -> SidecarStore:
    return SidecarStore(LimiterMachine("127.0.0.1:9"))


async def test_decides_locally_to_the_limit_and_refills() -> None:
    store = _store()
    hit = Hit(Counter("d", (("k", "v"),), PER_SECOND), 1)
    now = time.time_ns()
    assert [(await store.hit([hit], now))[0].allowed for _ in range(3)] == [True, True, False]
    assert (await store.hit([hit], now + NS_PER_SECOND))[0].allowed


async def test_a_rule_with_two_limits_is_one_key_reported_once() -> None:
    store = _store()
    entries = (("k", "v"),)
    hits = [Hit(Counter("d", entries, PER_SECOND), 1), Hit(Counter("d", entries, PER_MINUTE), 1)]
    now = time.time_ns()
    outcomes = [await store.hit(hits, now + i * NS_PER_SECOND) for i in range(4)]
    assert [o[0].allowed for o in outcomes] == [True, True, True, False]  # 3/minute binds
    assert [o[1].remaining for o in outcomes[:3]] == [2, 1, 0]
    [out] = store.machine.collect(time.monotonic_ns())
    [key] = out.request.keys
    assert (key.domain, key.admitted, key.rejected) == ("d", 3, 1)
    assert [(e.key, e.value) for e in key.entries] == list(entries)
    assert len(key.limits) == 2  # travel with the report: a server with no rule counts them


async def test_a_servers_instruction_rejects_until_it_expires() -> None:
    store = _store()
    hit = Hit(Counter("d", (("k", "v"),), PER_SECOND), 1)
    now = time.time_ns()
    assert (await store.hit([hit], now))[0].allowed
    [st] = store.machine.states.values()
    apply_instruction(st, Instruction(NS_PER_SECOND, float("inf"), 0), time.monotonic_ns())
    outcome = (await store.hit([hit], time.time_ns()))[0]
    assert not outcome.allowed
    assert outcome.retry_after_ns > NS_PER_SECOND // 2
    assert (await store.hit([hit], time.time_ns() + 2 * NS_PER_SECOND))[0].allowed


async def test_debit_reports_hits_past_the_limit() -> None:
    store = _store()
    hit = Hit(Counter("d", (("k", "v"),), PER_SECOND), 5)
    await store.debit([hit], time.time_ns())
    [out] = store.machine.collect(time.monotonic_ns())
    assert out.request.keys[0].admitted == 5
    assert isinstance(out.request, pb.ReportRequest)
