"""The report deadline that follows the round trip (``client/deadline.py``), without a clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.client.deadline import ReportDeadline, ServerDeadlines
from ratekeeper.client.machine import LimiterMachine, LimiterOptions
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

FLOORS = st.floats(0.001, 1.0)
INTERVALS = st.floats(0.001, 2.0)
#: A report's fate: answered after that many seconds, or ``None``: timed out.
EVENTS = st.lists(st.none() | st.floats(0.0, 10.0), max_size=60)


def _play(d: ReportDeadline, events: list[float | None]) -> list[ReportDeadline]:
    seen = [d]
    for rtt in events:
        d = d.timed_out() if rtt is None else d.answered(rtt)
        seen.append(d)
    return seen


@given(FLOORS, INTERVALS, EVENTS)
def test_the_deadline_stays_within_the_floor_and_the_cap(
    floor: float, interval: float, events: list[float | None]
) -> None:
    for d in _play(ReportDeadline.starting(floor, interval), events):
        assert floor <= d.current <= max(floor, interval)


@given(FLOORS, INTERVALS, EVENTS)
def test_a_timeout_doubles_the_deadline_up_to_the_cap(
    floor: float, interval: float, events: list[float | None]
) -> None:
    d = _play(ReportDeadline.starting(floor, interval), events)[-1]
    assert d.timed_out().current == min(d.cap, 2 * d.current)


@given(FLOORS, INTERVALS, EVENTS, st.floats(0.0, 0.9))
def test_answers_faster_than_the_floor_bring_it_back_to_the_floor(
    floor: float, interval: float, events: list[float | None], fraction: float
) -> None:
    d = _play(ReportDeadline.starting(floor, interval), events)[-1]
    previous = d.current
    for _ in range(200):
        d = d.answered(fraction * floor)
    assert d.current == floor
    assert d.current <= previous


def test_a_round_trip_above_the_floor_is_followed_and_left() -> None:
    d = ReportDeadline.starting(0.025, 0.05)
    d = d.timed_out()  # a 40 ms round trip against a 25 ms deadline
    assert d.current == 0.05
    for _ in range(50):
        d = d.answered(0.040)
    assert 0.040 <= d.current <= 0.05  # sits above the round trip, below the cap
    for _ in range(200):
        d = d.answered(0.002)  # the link got fast again
    assert d.current == 0.025


def test_a_refusal_does_not_grow_the_deadline_a_timeout_does() -> None:
    deadlines = ServerDeadlines(0.025, 0.05)
    deadlines.failed("a", 0.001)  # refused at once: says nothing of the round trip
    assert deadlines.of("a") == deadlines.longest == 0.025
    deadlines.failed("a", 0.025)
    assert deadlines.of("a") == deadlines.longest == 0.05
    assert deadlines.of("b") == 0.025
    deadlines.forget("a")
    assert deadlines.longest == 0.025


def test_the_machine_widens_a_server_s_deadline_after_a_timeout_and_shows_it() -> None:
    ms = 1_000_000
    m = LimiterMachine("s:1", LimiterOptions(limit="10/s", report_interval=0.05))
    now = 1_000 * ms
    (out,) = m.collect(now)
    assert out.timeout == m.stats.report_deadline == 0.025
    m.failed(out.address, "deadline exceeded", now + 25 * ms)
    (out,) = m.collect(now + 50 * ms)  # the resend gets the whole interval
    assert out.timeout == m.stats.report_deadline == 0.05
    m.answered(out.address, pb.ReportResponse(), now + 90 * ms)  # a 40 ms round trip
    (out,) = m.collect(now + 100 * ms)
    assert 0.04 <= out.timeout <= 0.05
