"""Every answer names the fleet the server hears from and the client's slot (the dealt onset),
on the wire too."""

from __future__ import annotations

from ratekeeper.proto.report import answer_from_wire, answer_to_wire

from .test_report import INTERVAL, key, processor


async def test_answers_name_the_fleet_and_a_stable_slot() -> None:
    send = processor()
    assert ((await send("a")).fleet, (await send("a")).slot) == (1, 0)
    b = await send("b", key([("user", "x")], admitted=1))
    assert (b.fleet, b.slot) == (2, 1)
    a = await send("a")
    assert (a.fleet, a.slot) == (2, 0)
    send.advance(3 * INTERVAL / 1e9 + 0.001)  # past b's instructions' validity, and a's
    c = await send("c")
    assert (c.fleet, c.slot) == (1, 0)


async def test_fleet_and_slot_survive_the_wire() -> None:
    send = processor()
    await send("a")
    answer = await send("b")
    assert answer_from_wire(answer_to_wire(answer)) == answer
