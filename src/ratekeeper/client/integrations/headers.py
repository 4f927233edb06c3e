"""IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-10) from a Decision.

* ``RateLimit-Policy: "<name>";q=<amount>;w=<window seconds>``: the quota, stable across
  responses (sent only when the key's limit is known);
* ``RateLimit: "<name>";r=<remaining>;t=<seconds>``: hits left now and, as ``t``, the seconds
  until the quota is fully restored (admitted) or until the next hit is admitted (refused);
* ``Retry-After: <seconds>`` on a refusal, never earlier than ``t``.

Seconds are rounded up: a client told to wait 0.2 s waits 1 s, never too little.
"""

from __future__ import annotations

import functools
import math

from ratekeeper.client.decide import Decision
from ratekeeper.core.limits import Limit

__all__ = ["rate_limit_headers"]

#: What a refusal waiting for ever advertises (the draft wants an integer).
_FOREVER_S = 86_400


def _seconds(value: float) -> int:
    return _FOREVER_S if math.isinf(value) else math.ceil(value)


@functools.lru_cache(maxsize=1024)
def _policy(name: str, limit: Limit) -> tuple[str, str]:
    """The quoted policy name and the ``RateLimit-Policy`` value (stable: computed once)."""
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return quoted, f"{quoted};q={limit.amount};w={limit.period_s}"


def rate_limit_headers(decision: Decision, name: str = "default") -> list[tuple[str, str]]:
    """The header fields for ``decision`` under the policy ``name`` (a token, quoted here)."""
    limit = decision.limit
    if limit is None:
        return []
    quoted, policy = _policy(name, limit)
    t = _seconds(decision.reset_after if decision.allowed else decision.retry_after)
    headers = [
        ("RateLimit-Policy", policy),
        ("RateLimit", f"{quoted};r={decision.remaining or 0};t={t}"),
    ]
    if not decision.allowed:
        headers.append(("Retry-After", str(max(t, _seconds(decision.retry_after)))))
    return headers
