"""The report processor with the operator page's tap: every applied report, with its answer,
goes to an :class:`~ratekeeper.server.operator_history.OperatorTap`.

The processor's logic is unchanged: :class:`ObservedReports` hands it the report with its keys
wrapped in a :class:`ReadKeys` view that keeps each key as the processor converts it from the
wire (so the tap reads no key twice), then gives the report, those keys and the answer to the
tap. A report refused or failed is not observed. Built only when the page is served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import overload

from ratekeeper.protocol.chunked import Pause
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import StatsSink
from ratekeeper.server.operator_history import OperatorTap

__all__ = ["ObservedReports", "ReadKeys", "report_processor"]


class ReadKeys(Sequence[KeyCounts]):
    """A report's keys that remembers each one read, by index (``None``: not read)."""

    __slots__ = ("_keys", "read")

    def __init__(self, keys: Sequence[KeyCounts]) -> None:
        self._keys = keys
        self.read: list[KeyCounts | None] = [None] * len(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> KeyCounts: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[KeyCounts]: ...
    def __getitem__(self, index: int | slice) -> KeyCounts | Sequence[KeyCounts]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._keys)))]
        key = self._keys[index]
        self.read[index] = key
        return key


class ObservedReports(ReportProcessor):
    """A :class:`ReportProcessor` whose applied reports are observed by ``tap``."""

    def __init__(
        self,
        store: StoreGate,
        policies: Callable[[], Matcher | None],
        settings: ReportSettings,
        stats: StatsSink | None,
        tap: OperatorTap,
        pause: Pause | None = None,
    ) -> None:
        super().__init__(store, policies, settings, stats, pause)
        #: Where applied reports go.
        self.tap = tap

    async def process(self, report: Report, now: int) -> ReportAnswer:
        keys = ReadKeys(report.keys)
        answer = await super().process(dataclasses.replace(report, keys=keys), now)
        self.tap.observe(report, keys.read, answer, now)
        return answer


def report_processor(
    store: StoreGate,
    policies: Callable[[], Matcher | None],
    settings: ReportSettings,
    stats: StatsSink | None,
    tap: OperatorTap | None,
) -> ReportProcessor:
    """A plain :class:`ReportProcessor` without a tap (no page: no cost), else one observed by
    ``tap``."""
    if tap is None:
        return ReportProcessor(store, policies, settings, stats)
    return ObservedReports(store, policies, settings, stats, tap)
