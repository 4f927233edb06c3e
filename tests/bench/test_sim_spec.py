"""shapes.yaml loads, and a broken spec names the offending entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sim.spec import SpecError, load_profile, load_spec


def test_shipped_spec_has_both_profiles_with_every_required_shape() -> None:
    profiles = load_spec()
    names = {run.shape.name for run in profiles["full"]}
    assert {"steady-0.5x", "steady-2x", "steady-10x", "steady-100x", "step-cold"} <= names
    assert {"boundary-burst", "zipf-keys", "hot-key", "small-1ps", "small-5ps"} <= names
    assert {"many-clients", "server-restart", "spike-10x"} <= names
    assert max(run.shape.clients for run in profiles["full"]) >= 50
    assert {run.network_name for run in profiles["full"]} == {"cloud", "loopback"}
    quick = load_profile("quick")
    assert all(run.shape.duration_s <= 5 for run in quick)


BASE = """
networks: {loopback: {}}
shapes:
  s: {limit: 5/s, duration_s: 3, clients: 2, rate: {kind: steady, multiple: 2}}
profiles:
  p: [{shape: s}]
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("multiple: 2", "multiple: -1"), "shapes.s.rate.multiple: must be a number > 0"),
        (("kind: steady", "kind: wobbly"), "shapes.s.rate.kind: must be one of"),
        (("limit: 5/s", "limit: lots"), "shapes.s.limit: cannot parse limit"),
        (("clients: 2", "clients: 2, colour: red"), "unknown field(s) ['colour']"),
        (("shape: s", "shape: t"), "profiles.p[0].shape: unknown shape 't'"),
        (("{loopback: {}}", "{loopback: {dist: wifi}}"), "networks.loopback.dist"),
        (("steady, multiple: 2", "step, multiple: 2"), "step needs ['at_s']"),
    ],
)
def test_errors_name_the_entry(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "shapes.yaml"
    path.write_text(BASE.replace(*edit))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value)


def test_issue_11_fleet_shapes_are_in_the_full_profile() -> None:
    names = {run.shape.name for run in load_spec()["full"]}
    assert {"sparse-many", "small-many-1ps", "step-cold-many"} <= names
    assert {"multi-limit", "per-minute", "large-burst"} <= names


def test_every_architecture_expresses_bursts_and_several_limits(tmp_path: Path) -> None:
    """The service's config carries the whole policy (issue 11: bench refused any burst); the
    figures are measured against the limit that binds over the run."""
    from bench.sim.runner import _policy_yaml

    spec = tmp_path / "s.yaml"
    spec.write_text(BASE.replace("limit: 5/s", 'limit: "2/s; 20/minute burst 5"'))
    (run,) = load_profile("p", spec)
    assert str(run.shape.limit) == "20/minute burst 5"  # 0.33·3 + 5 < 2·3 + 2
    assert len(run.shape.policy) == 2
    assert 'limit: "2/second; 20/minute burst 5"' in _policy_yaml(run)
