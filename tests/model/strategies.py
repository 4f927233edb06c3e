"""Random fleets for the property tests: clients, policies, shapes, intervals and networks."""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from ratekeeper.core.limits import NS_PER_SECOND, parse_limits
from ratekeeper.testing.model.arrivals import Arrivals, OnOff, Poisson, Steady
from ratekeeper.testing.model.fleet import Scenario
from ratekeeper.testing.model.network import CLOUD, LAN, Delay, Network
from tests.model.conftest import MAX_CLIENT_SECONDS, MAX_CLIENTS

_MS = NS_PER_SECOND // 1000

#: Policies from 1/minute to 10,000/s, with and without bursts.
POLICIES = st.sampled_from(
    [
        "1/minute",
        "4/minute",
        "1/s",
        "5/s",
        "10/s",
        "50/s",
        "100/s",
        "100/s burst 200",
        "1000/s",
        "10000/s",
    ]
)

SHAPES = st.sampled_from(["steady", "poisson", "onoff"])

NETWORKS = st.one_of(
    st.just(LAN),
    st.just(CLOUD),
    st.builds(
        lambda low, tail, loss: Network(
            Delay(low * _MS, tail * _MS, (low + 10 * tail) * _MS),
            Delay(low * _MS, tail * _MS, (low + 10 * tail) * _MS),
            loss,
            loss,
        ),
        st.integers(0, 20),
        st.integers(0, 5),
        st.sampled_from([0.0, 0.001, 0.01]),
    ),
)


def rate_of(limit: str) -> float:
    return min(parse_limits(limit), key=lambda x: (x.period_ns, x.rate_per_s)).rate_per_s


def shaped(shape: str, per_client: float) -> Arrivals:
    if shape == "steady":
        return Steady(per_client)
    if shape == "onoff":
        return OnOff(2 * per_client, 1.0, 1.0)
    return Poisson(per_client)


@st.composite
def fleets(
    draw: st.DrawFn,
    factor: st.SearchStrategy[float],
    policies: st.SearchStrategy[str] = POLICIES,
    shapes: st.SearchStrategy[str] = SHAPES,
    max_clients: int = MAX_CLIENTS,
) -> Scenario:
    """A fleet offering ``factor`` × the policy's rate in total, spread evenly over its clients."""
    limit = draw(policies)
    n = draw(st.integers(1, max_clients))
    total = rate_of(limit) * draw(factor)
    minute = "minute" in limit
    duration = 120.0 if minute else draw(st.sampled_from([5.0, 10.0, 20.0]))
    # keep each drawn run cheap: client-seconds and hits offered both bounded
    hits = total * duration
    scale = min(1.0, MAX_CLIENT_SECONDS / (n * duration), 40_000 / max(hits, 1.0))
    if scale < 1.0 and not minute:
        duration = max(2.0, duration * scale)
    interval = draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]))
    return Scenario(
        n,
        limit,
        shaped(draw(shapes), total / n),
        duration_s=duration,
        report_interval_s=interval,
        network=draw(NETWORKS),
        seed=draw(st.integers(0, 1000)),
    )


def with_rate(sc: Scenario, factor: float) -> Scenario:
    """``sc`` offering ``factor`` × the policy in total instead."""
    arrivals = sc.arrivals
    assert isinstance(arrivals, Steady | Poisson)
    per = rate_of(sc.limit) * factor / sc.clients
    return dataclasses.replace(sc, arrivals=type(arrivals)(per))
