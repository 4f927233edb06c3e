"""A fleet whose round trip exceeds the configured report deadline (``client/deadline.py``).

With 50 ms reports the configured deadline is 25 ms; 18-20 ms each way makes every round trip
longer. A fixed deadline answered no report at all: every client failed open and the fleet
admitted every hit offered (docs/bounds.md, the note under bound 5). The deadline now grows
after a timeout to the round trip (at most one interval), so reports are answered again and the
run-long bound holds.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.testing.model import bounds
from ratekeeper.testing.model.arrivals import Poisson
from ratekeeper.testing.model.fleet import Run, Scenario, simulate
from ratekeeper.testing.model.network import Delay, Network
from tests.model.conftest import PROPERTIES

MS = 1_000_000
INTERVAL_S = 0.05
#: The configured deadline: half the interval (the default).
DEADLINE_MS = 25


def _slow(low_ms: float, clients: int, limit: str, factor: float, seed: int) -> Scenario:
    low = round(low_ms * MS)
    delay = Delay(low, 1 * MS, low + 2 * MS)  # the round trip: 2·low to 2·low + 4 ms
    rate = float(limit.split("/")[0])
    return Scenario(
        clients,
        limit,
        Poisson(factor * rate / clients),
        duration_s=20.0,
        report_interval_s=INTERVAL_S,
        network=Network(up=delay, down=delay),
        seed=seed,
    )


def _answered_share(run: Run) -> float:
    return sum(run.answered) / sum(run.sent)


def test_reports_over_a_link_slower_than_the_deadline_are_answered() -> None:
    run = simulate(_slow(18, 17, "10/s", 3.0, seed=1))
    assert _answered_share(run) >= 0.95  # measured 6,723 of 6,800
    assert bounds.run_long_excess(run) <= 0.0


@PROPERTIES
@given(
    # one way above half the configured deadline, the round trip still within the interval
    low_ms=st.floats(DEADLINE_MS / 2 + 0.5, 20.0),
    clients=st.integers(2, 30),
    factor=st.floats(1.5, 5.0),
    seed=st.integers(0, 2**16),
)
def test_the_run_long_bound_holds_over_links_slower_than_the_deadline(
    low_ms: float, clients: int, factor: float, seed: int
) -> None:
    run = simulate(_slow(low_ms, clients, "10/s", factor, seed))
    assert _answered_share(run) >= 0.9
    assert bounds.run_long_excess(run) <= 0.0
