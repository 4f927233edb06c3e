"""Arrival schedules: seeded, at the configured rate, spread over clients and keys as specified."""

from __future__ import annotations

import numpy as np

from bench.sim.schedule import NS, build, key_weights, segments
from bench.sim.spec import KeySpec, RateSpec, Shape
from ratekeeper.core.limits import Limit


def _shape(rate: RateSpec, keys: KeySpec | None = None, seed: int = 1) -> Shape:
    return Shape("t", Limit(50), 10.0, clients=7, keys=keys or KeySpec(), rate=rate, seed=seed)


def test_same_seed_same_schedule_and_another_seed_differs() -> None:
    a = build(_shape(RateSpec("steady", 2)))
    b = build(_shape(RateSpec("steady", 2)))
    c = build(_shape(RateSpec("steady", 2), seed=2))
    assert np.array_equal(a.t_ns, b.t_ns)
    assert np.array_equal(a.client, b.client)
    assert not np.array_equal(a.t_ns, c.t_ns)


def test_steady_rate_and_clients() -> None:
    sched = build(_shape(RateSpec("steady", 2)))
    assert abs(sched.t_ns.size - 1000) < 4 * np.sqrt(1000)
    assert np.all(np.diff(sched.t_ns) >= 0)
    assert set(sched.client.tolist()) == set(range(7))
    times, _ = sched.for_client(3)
    assert times.size == int((sched.client == 3).sum())


def test_step_is_silent_before_a_cold_onset() -> None:
    sched = build(_shape(RateSpec("step", 10, at_s=4, before=0)))
    assert sched.t_ns.min() >= 4 * NS
    assert abs(sched.t_ns.size - 3000) < 4 * np.sqrt(3000)


def test_boundary_bursts_straddle_every_other_second() -> None:
    rate = RateSpec("boundary_burst", 2, every_s=2, width_ms=100)
    assert segments(rate, 50, 10.0)[:2] == [(1.9, 2.1, 500.0), (3.9, 4.1, 500.0)]
    sched = build(_shape(rate))
    offsets = sched.t_ns % (2 * NS)
    assert np.all((offsets < 0.1 * NS) | (offsets >= 1.9 * NS))


def test_key_popularity() -> None:
    hot = key_weights(KeySpec(count=10, popularity="hot", share=0.9))
    assert abs(hot[0] - 0.9) < 1e-12
    assert abs(hot.sum() - 1) < 1e-12
    zipf = key_weights(KeySpec(count=100, popularity="zipf", s=1.1))
    assert np.all(np.diff(zipf) < 0)
    sched = build(_shape(RateSpec("steady", 20), KeySpec(count=100, popularity="zipf", s=1.1)))
    counts = np.bincount(sched.key, minlength=100)
    assert counts[0] > counts[10] > counts[99]
