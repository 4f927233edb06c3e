"""Hypothesis profiles for the property suite: fast by default, long behind an env flag.

``RATEKEEPER_LONG_PROPERTIES=1`` draws many more and larger fleets (up to 200 clients, longer
runs); the default profile keeps the whole suite under a minute on a shared machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

LONG = os.environ.get("RATEKEEPER_LONG_PROPERTIES") == "1"

#: Most clients, and most client-seconds per drawn fleet, in this profile.
MAX_CLIENTS = 200 if LONG else 60
MAX_CLIENT_SECONDS = 4_000.0 if LONG else 300.0

PROPERTIES = settings(
    max_examples=60 if LONG else 4,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # shrinking re-runs whole fleets hundreds of times: minutes, not the fast profile's seconds
    phases=tuple(Phase) if LONG else (Phase.explicit, Phase.generate),
)
