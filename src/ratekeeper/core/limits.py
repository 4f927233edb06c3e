"""Limit values and the string spelling Python users know from ``limits``.

A :class:`Limit` is an amount of hits per period, an optional burst and an algorithm. It is a
value: immutable, hashable, cheap to compare. Periods are whole seconds (a unit times a
multiplier), so every derived quantity is an exact integer.

Grammar accepted by :func:`parse_limit` (case-insensitive, ASCII only, spaces optional around
symbols)::

    limit  := AMOUNT ("/" | "per") [MULTIPLIER] UNIT ["burst" BURST] ["(" ALGORITHM ")"]
    limits := limit ((";" | "," | "|") limit)*

with ``UNIT`` one of second/minute/hour/day/week/month/year, their plurals, or the short forms
``s sec m min h hr d w mo y``; ``"10/5m"`` (django-ratelimit's short form) parses too.
``ALGORITHM`` is an :class:`Algorithm` value; it is what ``str(limit)`` appends for the window
algorithms, so that ``parse_limit(str(limit)) == limit`` for every limit.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from ratekeeper.errors import LimitParseError

__all__ = [
    "ALGORITHM_BY_NAME",
    "NS_PER_SECOND",
    "UNIT_BY_NAME",
    "UNIT_BY_SECONDS",
    "UNIT_SPELLINGS",
    "Algorithm",
    "Limit",
    "Unit",
    "ceil_div",
    "parse_limit",
    "parse_limits",
    "window_start",
]

NS_PER_SECOND = 1_000_000_000


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up, in exact integer arithmetic (``b > 0``)."""
    return -(-a // b)


def window_start(limit: Limit, now: int) -> int:
    """The start, in whole seconds since the epoch, of the epoch-aligned period of ``limit``
    that contains ``now`` (ns since the epoch): where the window algorithms count."""
    now_s = now // NS_PER_SECOND
    return now_s - now_s % limit.period_s


class Unit(enum.Enum):
    """A period unit; the value is its length in seconds (month = 30 d, year = 365 d)."""

    # Members are singletons: identity hashing is correct and, unlike Enum's, runs in C (units
    # key dict lookups on every hit).
    __hash__ = object.__hash__

    SECOND = 1
    MINUTE = 60
    HOUR = 3600
    DAY = 86_400
    WEEK = 7 * 86_400
    MONTH = 30 * 86_400
    YEAR = 365 * 86_400

    @property
    def seconds(self) -> int:
        return self.value


class Algorithm(enum.Enum):
    """How hits are counted against a limit."""

    __hash__ = object.__hash__  # as Unit's: STRATEGIES is looked up on every hit

    #: Refills continuously up to the burst; reported admissions drive it into debt.
    TOKEN_BUCKET = "token_bucket"
    #: envoyproxy/ratelimit's epoch-aligned fixed window.
    FIXED_WINDOW = "fixed_window"
    #: The previous window's count weighted by its overlap, plus the current window's.
    SLIDING_WINDOW = "sliding_window"


@dataclass(frozen=True, slots=True)
class Limit:
    """``amount`` hits per ``multiplier`` × ``unit``."""

    #: Hits admitted per period; 0 blocks every hit (as envoyproxy/ratelimit does).
    amount: int
    #: The period's unit.
    unit: Unit = Unit.SECOND
    #: How many units one period spans ("10/5 minutes" has multiplier 5).
    multiplier: int = 1
    #: Token-bucket capacity; ``None`` means ``amount`` (no extra burst).
    burst: int | None = None
    #: The counting algorithm.
    algorithm: Algorithm = Algorithm.TOKEN_BUCKET

    #: The period in whole seconds (derived; stored because every hit reads it).
    period_s: int = field(init=False, repr=False, compare=False)
    #: The period in nanoseconds (derived, stored for the same reason).
    period_ns: int = field(init=False, repr=False, compare=False)
    #: The most hits admissible at once: the burst, or the amount when no burst is set.
    capacity: int = field(init=False, repr=False, compare=False)
    #: The limit as plain values (amount, unit seconds, multiplier, burst, algorithm name):
    #: equal exactly when the limits are, and a tuple CPython's cyclic collector need not track,
    #: so a store can key many counters by it without slowing every full collection.
    identity: tuple[int, int, int, int | None, str] = field(init=False, repr=False, compare=False)
    # Stores key counters by Limit; the generated hash would call Enum.__hash__ on every lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise LimitParseError(f"amount must be >= 0, got {self.amount}")
        if self.multiplier < 1:
            raise LimitParseError(f"period multiplier must be >= 1, got {self.multiplier}")
        if self.burst is not None and self.burst < 0:
            raise LimitParseError(f"burst must be >= 0, got {self.burst}")
        period_s = self.unit.value * self.multiplier
        identity = (self.amount, self.unit.value, self.multiplier, self.burst,
                    self.algorithm.value)  # fmt: skip
        setattr_ = object.__setattr__  # frozen: the derived fields are set past its guard
        setattr_(self, "period_s", period_s)
        setattr_(self, "period_ns", period_s * NS_PER_SECOND)
        setattr_(self, "capacity", self.amount if self.burst is None else self.burst)
        setattr_(self, "identity", identity)
        setattr_(self, "_hash", hash(identity))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def from_identity(cls, identity: tuple[int, int, int, int | None, str]) -> Limit:
        """The limit whose :attr:`identity` is ``identity``."""
        amount, unit, multiplier, burst, algorithm = identity
        return cls(amount, Unit(unit), multiplier, burst, Algorithm(algorithm))

    @property
    def rate_per_s(self) -> float:
        """The long-run rate in hits per second (for display and instruction maths)."""
        return self.amount / self.period_s

    def __str__(self) -> str:
        period = self.unit.name.lower()
        if self.multiplier != 1:
            period = f"{self.multiplier} {period}s"
        text = f"{self.amount}/{period}"
        if self.burst is not None:
            text += f" burst {self.burst}"
        if self.algorithm is not Algorithm.TOKEN_BUCKET:
            text += f" ({self.algorithm.value})"
        return text


_UNIT_NAMES: dict[str, Unit] = {
    "s": Unit.SECOND, "sec": Unit.SECOND, "second": Unit.SECOND, "seconds": Unit.SECOND,
    "m": Unit.MINUTE, "min": Unit.MINUTE, "minute": Unit.MINUTE, "minutes": Unit.MINUTE,
    "h": Unit.HOUR, "hr": Unit.HOUR, "hour": Unit.HOUR, "hours": Unit.HOUR,
    "d": Unit.DAY, "day": Unit.DAY, "days": Unit.DAY,
    "w": Unit.WEEK, "week": Unit.WEEK, "weeks": Unit.WEEK,
    "mo": Unit.MONTH, "month": Unit.MONTH, "months": Unit.MONTH,
    "y": Unit.YEAR, "year": Unit.YEAR, "years": Unit.YEAR,
}  # fmt: skip

_LIMIT_RE = re.compile(
    r"""^\s*(?P<amount>\d+)\s*(?:/|\s+per\s+)\s*
        (?P<mult>\d+)?\s*(?P<unit>[a-z]+)
        (?:\s+burst\s+(?P<burst>\d+))?
        (?:\s*\(\s*(?P<algorithm>[a-z_]+)\s*\))?\s*$""",
    re.IGNORECASE | re.VERBOSE | re.ASCII,
)
_ALGORITHM_NAMES = {algorithm.value: algorithm for algorithm in Algorithm}
_SEPARATORS = re.compile(r"[;,|]")

# The one vocabulary of unit and algorithm names: the limit grammar, the config loader and the
# wire converters all read these tables instead of restating them.

#: Every spelling of a unit the limit grammar accepts: the names, plurals and short forms.
UNIT_SPELLINGS: dict[str, Unit] = _UNIT_NAMES
#: Every unit by its name in lower case (``second`` ... ``year``): envoyproxy/ratelimit's
#: ``unit`` field, checked case-insensitively.
UNIT_BY_NAME: dict[str, Unit] = {unit.name.lower(): unit for unit in Unit}
#: Every unit by its length in seconds (the Report wire's ``unit_seconds``).
UNIT_BY_SECONDS: dict[int, Unit] = {unit.value: unit for unit in Unit}
#: Every algorithm by its value (``token_bucket``, ``fixed_window``, ``sliding_window``).
ALGORITHM_BY_NAME: dict[str, Algorithm] = _ALGORITHM_NAMES


def parse_limit(text: str, *, algorithm: Algorithm = Algorithm.TOKEN_BUCKET) -> Limit:
    """Parse one limit such as ``"100/second"``, ``"10 per 5 minutes"`` or ``"100/s burst 200"``.

    ``algorithm`` applies unless the text names one (``"10/minute (fixed_window)"``).
    Raises :class:`~ratekeeper.errors.LimitParseError` naming the offending text.
    """
    match = _LIMIT_RE.match(text)
    if match is None:
        raise LimitParseError(
            f"cannot parse limit {text!r}: expected e.g. '100/second', '10 per 5 minutes' "
            "or '100/s burst 200'"
        )
    unit = _UNIT_NAMES.get(match["unit"].lower())
    if unit is None:
        raise LimitParseError(f"cannot parse limit {text!r}: unknown unit {match['unit']!r}")
    mult = int(match["mult"]) if match["mult"] else 1
    if mult == 0:
        raise LimitParseError(f"cannot parse limit {text!r}: period multiplier must be >= 1")
    burst = int(match["burst"]) if match["burst"] else None
    if match["algorithm"]:
        named = _ALGORITHM_NAMES.get(match["algorithm"].lower())
        if named is None:
            raise LimitParseError(
                f"cannot parse limit {text!r}: unknown algorithm {match['algorithm']!r}"
            )
        algorithm = named
    return Limit(int(match["amount"]), unit, mult, burst, algorithm)


def parse_limits(text: str, *, algorithm: Algorithm = Algorithm.TOKEN_BUCKET) -> tuple[Limit, ...]:
    """Parse several limits separated by ``;``, ``,`` or ``|`` (``"10/second; 1000/day"``)."""
    parts = [part for part in _SEPARATORS.split(text) if part.strip()]
    if not parts:
        raise LimitParseError(f"cannot parse limits {text!r}: no limit given")
    return tuple(parse_limit(part, algorithm=algorithm) for part in parts)
