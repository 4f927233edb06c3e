"""Redis key names.

Fixed-window keys are envoyproxy/ratelimit's, byte for byte, so that a ratekeeper server and the
reference service can share one Redis (and its counters) while traffic moves from one to the
other::

    prefix + domain + "_" + (key + "_" + value + "_")* + window_start

with ``window_start`` the epoch-aligned start of the window in whole seconds (its divider being
the limit's whole period, so "10 per 5 minutes" has windows of 300 s). Like the reference's, the
format is not injective, and two fixed-window limits on one descriptor (our extension; the
reference refuses such configs) share a key in the instants where their windows start together.

Token buckets and sliding windows have no reference format; their keys end in ``tb`` or ``sw``
and the period in seconds instead of a window start (the state spans windows, and a bucket's
level is counted in units of its period).
"""

from __future__ import annotations

from ratekeeper.backends.store import Counter
from ratekeeper.core import fixed_window
from ratekeeper.core.limits import Algorithm

__all__ = ["STATE_TAGS", "counter_key", "fixed_window_key", "state_key"]

#: The tag of each algorithm whose state lives under a key of its own: its keys end in it, and
#: ``batch.lua`` names the operation on such a key by it.
STATE_TAGS = {Algorithm.TOKEN_BUCKET: "tb", Algorithm.SLIDING_WINDOW: "sw"}


def counter_key(prefix: str, counter: Counter) -> str:
    """``prefix + domain + "_" + (key "_" value "_")*``: how every key of ``counter`` begins."""
    parts = [prefix, counter.domain, "_"]
    for key, value in counter.entries:
        parts += (key, "_", value, "_")
    return "".join(parts)


def fixed_window_key(prefix: str, counter: Counter, now: int) -> str:
    """The reference's cache key of the window containing ``now`` (ns since the epoch)."""
    return counter_key(prefix, counter) + str(fixed_window.window_start(counter.limit, now))


def state_key(prefix: str, counter: Counter) -> str:
    """The key of a token bucket's or sliding window's state."""
    limit = counter.limit
    return f"{counter_key(prefix, counter)}{STATE_TAGS[limit.algorithm]}{limit.period_s}"
