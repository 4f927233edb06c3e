"""What a server tells each client about a key after a batch report.

A client reports, per key, the hits it admitted and rejected over an interval. The server debits
the admitted hits from the key's counter (a token bucket goes into debt) and answers each client:

* ``reject_for_ns``: reject everything for this long. While the counter is exhausted or in debt
  this is the time until the next hit is admissible again: ``(debt + 1) / rate`` for a bucket.
* ``admit_rate``: after that, admit at most this many hits per second. When the demand that all
  clients report exceeds the policy's rate, the rate is split among them in proportion to their
  demand (Doorman's proportional share; with one client this is the seed's
  ``rejectionRate = (estimatedQps - policy) / estimatedQps`` expressed as what to admit rather
  than what to drop). Under the policy it is unbounded: the client admits optimistically.
* ``valid_for_ns``: how long the rate stays in force. A client that hears nothing more (server
  down, partition) falls back to optimistic admission plus its local limiter when it expires, so a
  stale instruction cannot hold a key down for long. Durations are relative: clients and servers
  do not share clocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND, Algorithm, Limit
from ratekeeper.core.outcome import Outcome

__all__ = ["UNBOUNDED", "Instruction", "demand_rate", "instruct"]

#: ``admit_rate`` of an instruction that sets no rate.
UNBOUNDED = math.inf
#: Read once: an enum member looked up on its class costs a descriptor call each time.
_TOKEN_BUCKET = Algorithm.TOKEN_BUCKET


@dataclass(frozen=True, slots=True)
class Instruction:
    """One key's instruction to one client."""

    #: Reject every hit for this long from receipt (0: no rejection period).
    reject_for_ns: int
    #: Hits per second the client may admit once the rejection period is over.
    admit_rate: float
    #: How long ``admit_rate`` holds from receipt.
    valid_for_ns: int
    #: The limits the server counts the key against (empty: not limited, or not known).
    limits: tuple[Limit, ...] = ()
    #: Why the server refused the key's counts (nothing of it applied); empty if it did not.
    error: str = ""


def demand_rate(admitted: int, rejected: int, interval_ns: int) -> float:
    """Hits per second offered over a report interval (an empty interval counts as 1 ms)."""
    return (admitted + rejected) * NS_PER_SECOND / max(interval_ns, 1_000_000)


def instruct(
    state: Outcome,
    limit: Limit,
    client_demand: float,
    total_demand: float,
    valid_for_ns: int,
    horizon_ns: int = NS_PER_SECOND,
    repay_debt: bool = False,
) -> Instruction:
    """The instruction for one client, given the key's state after the report was applied.

    ``state`` is the counter's outcome at the report's arrival (``peek``), ``client_demand`` this
    client's demand and ``total_demand`` the sum over every client recently reporting the key.

    What the counter can supply is its refill rate plus its unspent tokens spread over
    ``horizon_ns``. Only demand beyond that is split: a counter with tokens to spare restricts
    nobody (noisy demand estimates of sparse clients cost no false rejections), and a share of
    a counter that still holds tokens includes them, so deterministic pacing — which admits a
    little after each slot — does not leave the policy's tokens unspent. With ``repay_debt``, a
    bucket in debt supplies its refill less the debt spread over the same horizon: shares that
    add up to the refill rate alone hold the debt where it is (a client told to reject for the
    debt repays it alone, and the others hear of it only with their next report), so the
    run-long count stays a debt above ``r·T + b`` (issue 11, bound 3).
    """
    if state.remaining > 0:
        reject_for = 0
    elif state.retry_after_ns < 0:  # a limit of 0: never admissible
        reject_for = valid_for_ns
    else:
        reject_for = state.retry_after_ns
    level = _level(state, limit) if repay_debt else float(max(0, state.remaining))
    budget = max(0.0, limit.rate_per_s + level * NS_PER_SECOND / horizon_ns)
    admit_rate = UNBOUNDED if total_demand <= budget else budget * client_demand / total_demand
    return Instruction(reject_for, admit_rate, valid_for_ns)


def _level(state: Outcome, limit: Limit) -> float:
    """Tokens the counter holds: its whole tokens left, or minus its debt (a token bucket's
    level, read back from the time it needs to be full again)."""
    if state.remaining > 0 or limit.algorithm is not _TOKEN_BUCKET:
        return float(max(0, state.remaining))
    return min(0.0, limit.capacity - state.reset_after_ns * limit.rate_per_s / NS_PER_SECOND)
