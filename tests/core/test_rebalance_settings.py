"""The rebalancing knobs and the floor on the time between assignments."""

from __future__ import annotations

import pytest

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.rebalance_settings import RebalanceSettings, may_reassign, reassign_due_at


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": 1}, "tolerance"),
        ({"merge_fraction": 0.05}, "merge_fraction"),
        ({"merge_fraction": 0}, "merge_fraction"),
        ({"max_moved_fraction": 1.5}, "max_moved_fraction"),
        ({"min_interval_ns": 61 * NS_PER_SECOND}, "min_interval_ns"),
        ({"min_interval_ns": -1}, "min_interval_ns"),
    ],
)
def test_settings_are_checked(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RebalanceSettings(**fields)  # type: ignore[arg-type]


def test_the_floor_between_assignments() -> None:
    settings = RebalanceSettings(min_interval_ns=10, load_interval_ns=60)
    assert may_reassign(None, 0, settings)
    assert not may_reassign(100, 109, settings)
    assert may_reassign(100, 110, settings)
    assert reassign_due_at(None, False, settings) == 0
    assert reassign_due_at(100, True, settings) == 110
    assert reassign_due_at(100, False, settings) == 160
