"""The knobs of rebalancing, and when a round may run: a floor on the time between assignments.

Time is a parameter (integer nanoseconds on the caller's monotonic clock); nothing here reads a
clock. The assigner asks :func:`reassign_due_at` when to wake and :func:`may_reassign` before it
publishes, so a burst of membership changes yields one new assignment per floor, not one each.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.core.limits import NS_PER_SECOND

__all__ = ["RebalanceSettings", "may_reassign", "reassign_due_at"]


@dataclass(frozen=True, slots=True)
class RebalanceSettings:
    """How tightly to balance, how finely to cut, and how much may move per round."""

    #: Each server's load is brought within this fraction of the mean load, where slices allow.
    tolerance: float = 0.05
    #: A slice carrying more than this fraction of the mean server load is split.
    split_fraction: float = 0.05
    #: Neighbouring slices of one owner are merged while together under this fraction of the mean.
    merge_fraction: float = 0.02
    #: Above this many slices per server, the coldest neighbours are joined even across owners.
    max_slices_per_server: int = 64
    #: At most this fraction of the total load moves between servers that stay, per round.
    max_moved_fraction: float = 0.05
    #: Assignments are at least this far apart (ns), whatever happens: the floor on churn in time.
    min_interval_ns: int = 10 * NS_PER_SECOND
    #: With no change of membership, a round for load alone runs this often (ns).
    load_interval_ns: int = 60 * NS_PER_SECOND

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError("tolerance must lie strictly between 0 and 1")
        if not 0 < self.merge_fraction < self.split_fraction:
            raise ValueError("merge_fraction must be positive and below split_fraction")
        if self.max_slices_per_server < 1:
            raise ValueError("max_slices_per_server must be at least 1")
        if not 0 <= self.max_moved_fraction <= 1:
            raise ValueError("max_moved_fraction must lie in [0, 1]")
        if not 0 <= self.min_interval_ns <= self.load_interval_ns:
            raise ValueError("min_interval_ns must be non-negative and at most load_interval_ns")


def may_reassign(last_at: int | None, now: int, settings: RebalanceSettings) -> bool:
    """Whether a new assignment may be published at ``now`` (ns), the last one at ``last_at``."""
    return last_at is None or now - last_at >= settings.min_interval_ns


def reassign_due_at(
    last_at: int | None, membership_changed: bool, settings: RebalanceSettings
) -> int:
    """The earliest time (ns) the next round should run, ``0`` meaning now.

    A change of membership is due as soon as the floor allows; otherwise the next round is the
    periodic one for load.
    """
    if last_at is None:
        return 0
    wait = settings.min_interval_ns if membership_changed else settings.load_interval_ns
    return last_at + wait
