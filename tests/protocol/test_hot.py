"""The hot-key broadcast: keys in a rejection period reach every client, bounded in count."""

from __future__ import annotations

from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.proto.report import answer_from_wire, answer_to_wire
from ratekeeper.protocol.hot import HotKeys
from ratekeeper.protocol.report import ReportSettings
from tests.protocol.test_report import MS, key, processor


def hashed(*entries: tuple[str, str]) -> int:
    return key_hash(canonical_bytes("api", entries))


async def test_a_key_rejected_for_one_client_is_broadcast_to_every_client() -> None:
    send = processor()
    answer = await send("c1", key([("user", "alice")], admitted=25))
    assert answer.hot == ((hashed(("user", "alice")), 1_500 * MS),)
    send.advance(0.5)
    other = await send("c2")  # an empty report (a heartbeat) hears of it too
    assert other.hot == ((hashed(("user", "alice")), 1_000 * MS),)
    assert answer_from_wire(answer_to_wire(other)) == other
    send.advance(1.0)
    assert (await send("c2")).hot == ()  # repaid: no longer hot


async def test_the_broadcast_is_bounded_least_recently_rejected_dropped() -> None:
    send = processor(settings=ReportSettings(max_hot_keys=3))
    for i in range(5):
        await send("c1", key([("user", f"u{i}")], admitted=50))
    hot = (await send("c2")).hot
    assert [h for h, _ in hot] == [hashed(("user", f"u{i}")) for i in (2, 3, 4)]


def test_no_capacity_broadcasts_nothing() -> None:
    table = HotKeys(0)
    table.note("api", (("user", "a"),), 1_000, 0)
    assert table.current(0) == ()
