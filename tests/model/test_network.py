"""The network: delays within their bounds (so reordering is bounded), loss, partitions."""

from __future__ import annotations

import random

from ratekeeper.testing.model.network import CLOUD, Delay, Network, Partition

_MS = 1_000_000


def test_delays_stay_between_low_and_high() -> None:
    delay = Delay(2 * _MS, 3 * _MS, 30 * _MS)
    rng = random.Random(1)
    drawn = [delay.draw(rng) for _ in range(10_000)]
    assert min(drawn) >= 2 * _MS
    assert max(drawn) <= 30 * _MS
    assert 4 * _MS < sum(drawn) / len(drawn) < 6 * _MS


def test_loss_drops_about_its_fraction() -> None:
    net = Network(loss_up=0.2)
    rng = random.Random(2)
    lost = sum(net.send_up(rng, 0, 0) is None for _ in range(10_000))
    assert 1_800 < lost < 2_200


def test_a_partition_cuts_one_client_both_ways_for_its_window() -> None:
    net = Network(partitions=(Partition(3, 10, 20),))
    rng = random.Random(3)
    assert net.send_up(rng, 3, 15) is None
    assert net.send_down(rng, 3, 15) is None
    assert net.send_up(rng, 3, 20) is not None
    assert net.send_up(rng, 2, 15) is not None
    assert CLOUD.loss_up > 0
