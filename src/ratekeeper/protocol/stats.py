"""The one interface decisions report their counts through, and an in-memory implementation.

Protocol logic (:mod:`ratekeeper.protocol.rls`, :mod:`ratekeeper.protocol.report`) and the
servicers count through a :class:`StatsSink`; what the counts become is the sink's business: the
server's Prometheus metrics (``ratekeeper.server.metrics``) are one sink, :class:`MemoryStats`
another (tests, and an embedded decider such as the sidecar's).

Per-rule counts are hot: a decider asks the sink for a rule's :class:`RuleCounts` once, when it
plans a request, and adds to its fields in place on every call after; the sink reads them when it
is scraped. Label values clients choose (stats keys, domains) are capped by the sink: past its
cap, new ones share one record labelled :data:`OVERFLOW_LABEL`.

Thread safety: a sink and its records are used from one event loop.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Generic, Protocol, TypeVar

__all__ = [
    "OVERFLOW_LABEL",
    "RULE_COUNTS",
    "CappedLabels",
    "Event",
    "MemoryStats",
    "RuleCounts",
    "StatsSink",
    "Tally",
    "Timer",
    "Timings",
]

#: The label values of counts past a sink's cardinality cap.
OVERFLOW_LABEL = "_overflow_"


@dataclass(slots=True)
class RuleCounts:
    """Hits of one rule (one stats key), as envoyproxy/ratelimit counts them; added to in place.

    Slotted and mutable: the RLS fast path adds to these fields on every call.
    """

    #: Every hit the rule saw.
    total_hits: int = 0
    #: Hits over the limit (shadow-mode ones included).
    over_limit: int = 0
    #: Hits within the limit that left less than the near-limit ratio of it.
    near_limit: int = 0
    #: Hits within the limit.
    within_limit: int = 0
    #: Hits over the limit answered OK because the rule is in shadow mode.
    shadow_mode: int = 0


#: The fields of :class:`RuleCounts`, in declaration order (one exported metric each).
RULE_COUNTS: tuple[str, ...] = tuple(f.name for f in fields(RuleCounts))


@dataclass(slots=True)
class Tally:
    """A single count added to in place (descriptors sent for one unknown domain)."""

    count: int = 0


class Event(enum.Enum):
    """Counted occurrences with no label; the value is the metric's name."""

    #: A store call failed (answered per ``fail_closed``, or UNAVAILABLE for a report).
    STORE_ERROR = "store_errors"
    #: A call failed inside the server (a bug: answered INTERNAL).
    SERVICE_ERROR = "service_errors"
    #: A descriptor over its limit answered OK by global shadow mode.
    GLOBAL_SHADOW_MODE = "global_shadow_mode"
    #: A config load succeeded.
    CONFIG_LOAD_SUCCESS = "config_load_success"
    #: A config load failed (the old config is kept).
    CONFIG_LOAD_ERROR = "config_load_error"
    #: A report key's counts were above the bound its policy allows, and clamped to it.
    REPORT_COUNT_CLAMPED = "report_counts_clamped"
    #: A report key's counts were out of range: that key was refused, nothing of it applied.
    REPORT_KEY_REFUSED = "report_keys_refused"
    #: A report's number jumped past the client's window: refused (or applied unnumbered).
    REPORT_SEQUENCE_REFUSED = "report_sequences_refused"
    #: Descriptors sent to their owner (another member) got no answer (answered per
    #: ``fail_closed``).
    FORWARD_ERROR = "forward_errors"
    #: A counter reached a member that does not own its slice: applied anyway, counted once.
    MISDIRECTED_KEY = "misdirected_keys"


class Timer(Protocol):
    """Where one call's latencies go."""

    def observe(self, seconds: float) -> None:
        """Record one call that took ``seconds``; never blocks."""
        ...


class StatsSink(Protocol):
    """Where decisions and calls are counted. Event loop only; no method blocks or raises."""

    def rule(self, domain: str, key: str) -> RuleCounts:
        """The counts of the rule with stats key ``key`` in ``domain``; add to them in place.

        Asked once per request plan; the same object for the same labels (within the cap)."""
        ...

    def unknown_domain(self, domain: str) -> Tally:
        """The count of descriptors sent for ``domain``, which no config defines."""
        ...

    def count(self, event: Event) -> None:
        """One more ``event``."""
        ...

    def invalid(self, call: str) -> None:
        """One more call of ``call`` (a server-chosen name) refused as malformed."""
        ...

    def timer(self, call: str) -> Timer:
        """The latency record of ``call`` (a server-chosen name: cardinality is bounded)."""
        ...


_Record = TypeVar("_Record")


class CappedLabels(Generic[_Record]):
    """Records keyed by client-chosen label values, at most ``max_keys`` label sets: past the
    cap, new label sets share one record labelled :data:`OVERFLOW_LABEL`."""

    def __init__(self, max_keys: int, new: Callable[[], _Record]) -> None:
        self._max = max_keys
        self._new = new
        #: Label values → record, in first-seen order.
        self.records: dict[tuple[str, ...], _Record] = {}

    def get(self, *labels: str) -> _Record:
        """The record of ``labels``, made on first sight."""
        record = self.records.get(labels)
        if record is None:
            if len(self.records) >= self._max:
                labels = (OVERFLOW_LABEL,) * len(labels)
            record = self.records.get(labels)
            if record is None:
                record = self.records[labels] = self._new()
        return record


@dataclass(slots=True)
class Timings:
    """How many calls were timed, and their total seconds."""

    calls: int = 0
    seconds: float = 0.0

    def observe(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds


class MemoryStats:
    """A :class:`StatsSink` that keeps every count in plain attributes, for reading back."""

    def __init__(self, max_keys: int = 10_000) -> None:
        #: Per-rule counts by ``(domain, stats key)``.
        self.rules: CappedLabels[RuleCounts] = CappedLabels(max_keys, RuleCounts)
        #: Descriptors of unknown domains, by ``(domain,)``.
        self.unknown_domains: CappedLabels[Tally] = CappedLabels(max_keys, Tally)
        #: Occurrences of each event.
        self.events: Counter[Event] = Counter()
        #: Malformed calls, by call.
        self.invalid_calls: Counter[str] = Counter()
        #: Latencies, by call.
        self.timings: dict[str, Timings] = {}

    def rule(self, domain: str, key: str) -> RuleCounts:
        return self.rules.get(domain, key)

    def unknown_domain(self, domain: str) -> Tally:
        return self.unknown_domains.get(domain)

    def count(self, event: Event) -> None:
        self.events[event] += 1

    def invalid(self, call: str) -> None:
        self.invalid_calls[call] += 1

    def timer(self, call: str) -> Timings:
        timings = self.timings.get(call)
        if timings is None:
            timings = self.timings[call] = Timings()
        return timings
