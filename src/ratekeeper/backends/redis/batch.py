"""The Python side of ``batch.lua``: arguments out, stored state back, outcomes from the core.

The script only moves state (see its header); :func:`replay` runs the core's own algorithm on
the state the script read, so every outcome this backend returns is computed by
:mod:`ratekeeper.core`, and the state the script stored equals the core's (which the conformance
suite checks after every step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib.resources import files

from ratekeeper.backends.redis.keys import STATE_TAGS
from ratekeeper.core import fixed_window, sliding_window, token_bucket
from ratekeeper.core.algorithms import STRATEGIES, State, after_debit
from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit
from ratekeeper.core.outcome import Outcome

__all__ = ["SCRIPT", "SCRIPT_SHA", "arguments", "header", "replay", "stored_state"]

#: The script's source, shipped as package data.
SCRIPT = (files("ratekeeper.backends.redis") / "batch.lua").read_text(encoding="utf-8")
#: What ``EVALSHA`` names it by.
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode("utf-8")).hexdigest()
Reply = Sequence[bytes | None]


def _token_bucket_args(limit: Limit, now: int, hits: int, debt: int) -> list[int]:
    floor = token_bucket.debt_floor(limit, debt)
    return [limit.amount, limit.capacity * limit.period_ns, hits * limit.period_ns, floor]


def _sliding_window_args(limit: Limit, now: int, hits: int, debt: int) -> list[int]:
    start = fixed_window.window_start(limit, now)
    to_end = limit.period_ns - (now - start * NS_PER_SECOND)
    # The state matters until both of its windows are over.
    ttl_s = start + 2 * limit.period_s - now // NS_PER_SECOND
    units = limit.amount * limit.period_ns
    return [start, limit.period_s, to_end, limit.period_ns, hits, units, ttl_s]


def _token_bucket_state(reply: Reply) -> State | None:
    level, updated_at = reply
    if level is None or updated_at is None:
        return None
    return token_bucket.TokenBucket(int(level), int(updated_at))


def _sliding_window_state(reply: Reply) -> State | None:
    start, current, previous = reply
    if start is None or current is None or previous is None:
        return None
    return sliding_window.SlidingWindow(int(start), int(current), int(previous))


_ENCODERS: dict[Algorithm, Callable[[Limit, int, int, int], list[int]]] = {
    Algorithm.TOKEN_BUCKET: _token_bucket_args,
    Algorithm.SLIDING_WINDOW: _sliding_window_args,
}
_DECODERS: dict[Algorithm, Callable[[Reply], State | None]] = {
    Algorithm.TOKEN_BUCKET: _token_bucket_state,
    Algorithm.SLIDING_WINDOW: _sliding_window_state,
}


def header(now: int, take: bool) -> list[str]:
    """The script's first arguments: decide (``take``) or debit, and the caller's clock."""
    return ["1" if take else "0", str(now)]


def arguments(limit: Limit, now: int, hits: int, debt: int = 0) -> list[str]:
    """The script's arguments for one key, after :func:`header`: ``hits`` at ``now``.

    ``debt``: tokens of debt a debit may leave beyond the core's horizon (``Hit.debt``)."""
    algorithm = limit.algorithm
    return [STATE_TAGS[algorithm], *map(str, _ENCODERS[algorithm](limit, now, hits, debt))]


def stored_state(limit: Limit, reply: Reply) -> State | None:
    """The core state the script read for one key; ``None`` if the key did not exist."""
    return _DECODERS[limit.algorithm](reply)


def replay(
    state: State | None, limit: Limit, now: int, hits: int, take: bool, debt: int = 0
) -> Outcome:
    """Run the core on ``state`` (a fresh one if ``None``): decide ``hits``, or debit them and
    describe the state after, with ``allowed`` saying whether one more hit would be admitted
    now (the store contract)."""
    strategy = STRATEGIES[limit.algorithm]
    if state is None:
        state = strategy.new(limit, now)
    if take:
        return strategy.hit(state, limit, now, hits)
    return after_debit(state, limit, now, hits, debt)
