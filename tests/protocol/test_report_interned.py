"""Interned keys: a key sent by id and counts is applied and answered as if sent in full."""

from __future__ import annotations

from dataclasses import fields, replace

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.instructions import Instruction
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_interned import InternTable
from ratekeeper.protocol.report_keys import KeyResolver
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import MemoryStats

MS = 1_000_000
INTERVAL = 100 * MS
START = 1_700_000_000 * NS_PER_SECOND


def policy(per_second: int) -> PolicyTree:
    return PolicyTree.from_mapping(
        {
            "domain": "api",
            "descriptors": [
                {"key": "user", "rate_limit": {"unit": "second", "requests_per_unit": per_second}}
            ],
        }
    )


class Server:
    def __init__(self) -> None:
        self.policy = policy(10)
        self.processor = ReportProcessor(StoreGate(MemoryStore()), lambda: self.policy)
        self.now = START
        self.sequence = 0

    async def full(self, user: str, admitted: int, key_id: int = 0) -> ReportAnswer:
        self.sequence += 1
        key = KeyCounts("api", (("user", user),), admitted, 0, (), key_id)
        return await self.processor.process(Report("c", (key,), INTERVAL, self.sequence), self.now)

    async def known(
        self, ids: tuple[int, ...], admitted: tuple[int, ...], omit: bool = False
    ) -> ReportAnswer:
        self.sequence += 1
        report = Report("c", (), INTERVAL, self.sequence, ids, admitted, (0,) * len(ids), omit)
        return await self.processor.process(report, self.now)


async def test_a_known_key_counts_and_is_answered_as_the_full_form() -> None:
    interned, plain = Server(), Server()
    await interned.full("alice", 3, key_id=7)
    await plain.full("alice", 3)
    by_id = await interned.known((7,), (20,))
    in_full = await plain.full("alice", 20)
    assert by_id.changed == (0,)
    assert by_id.changed_instructions == in_full.instructions
    assert by_id.changed_instructions[0].reject_for_ns == 1_300 * MS  # 23 against 10/s
    assert by_id.valid_for_ns == 3 * INTERVAL


async def test_an_unknown_id_is_named_and_nothing_of_it_applied() -> None:
    server = Server()
    await server.full("alice", 0, key_id=1)
    answer = await server.known((1, 99), (0, 50))
    assert answer.unknown_ids == (99,)
    assert answer.changed == (0,)


async def test_unchanged_instructions_are_left_out_only_right_after_an_applied_answer() -> None:
    server = Server()
    await server.full("alice", 0, key_id=1)
    assert (await server.known((1,), (1,), omit=True)).changed == ()  # still unbounded
    server.sequence += 5  # reports the server never saw: the client's baseline is unknown
    assert (await server.known((1,), (1,), omit=True)).changed == (0,)
    assert (await server.known((1,), (50,), omit=True)).changed == (0,)  # now in debt


async def test_a_reload_resolves_known_keys_again() -> None:
    server = Server()
    await server.full("alice", 0, key_id=1)
    server.policy = policy(1000)
    answer = await server.known((1,), (1,), omit=True)
    assert answer.changed == (0,)
    assert answer.changed_instructions[0].limits == (Limit(1000, Unit.SECOND),)


def test_the_table_forgets_the_least_recent_clients_past_its_bound() -> None:
    table = InternTable(max_entries=3)
    shape = KeyResolver(ReportSettings(), MemoryStats()).shape(
        KeyCounts("api", (("user", "a"),)), None
    )
    table.add("old", 1, shape)
    table.add("old", 2, shape)
    table.add("new", 1, shape)
    table.add("new", 2, shape)
    assert len(table) == 2
    assert table.of("old") == {}
    lone = InternTable(max_entries=1)
    lone.add("c", 1, shape)
    lone.add("c", 2, replace(shape))
    assert len(lone) == 1
    assert set(lone.of("c")) == {2}


def test_the_omission_rule_compares_every_field_of_an_instruction() -> None:
    # Interning.answer leaves a key out when each of these equals what the client rebuilds; a
    # new field must be compared there too (and rebuilt in client.wire) before this is updated.
    assert [f.name for f in fields(Instruction)] == [
        "reject_for_ns",
        "admit_rate",
        "valid_for_ns",
        "limits",
        "error",
    ]
