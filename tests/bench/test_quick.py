"""The simulator's --quick profile end to end: real services, Redis, relays and clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sim.archs import ARCHITECTURES, unavailable_reason
from bench.sim.cli import build_parser
from bench.sim.spec import load_profile
from ratekeeper.cli import bench as bench_command
from ratekeeper.cli.main import main as ratekeeper_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.timeout(120)  # the profile's promise: the CI smoke run stays under two minutes
def test_quick_profile_runs_every_available_architecture(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=115,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads((out / "results.json").read_text())
    runs = load_profile("quick")
    default = build_parser().parse_args([]).arch.split(",")  # the cluster variants are opt-in
    available = {name for name in default if unavailable_reason(ARCHITECTURES[name]) is None}
    assert {(r["run"], r["arch"]) for r in rows} == {
        (run.label, arch) for run in runs for arch in available
    }
    for row in rows:
        assert row["offered_per_s"] > 0
        assert row["p99_us"] >= row["p50_us"] > 0
    assert "### Targets" in (out / "results.md").read_text()
    assert len(list((out / "img").glob("sim-*.png"))) == len(runs)


def test_ratekeeper_bench_delegates_to_the_simulator(capfd: pytest.CaptureFixture[str]) -> None:
    assert ratekeeper_main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "--quick" in out
    assert "usage: ratekeeper bench" in out


def test_ratekeeper_bench_passes_the_exit_code_on(capfd: pytest.CaptureFixture[str]) -> None:
    assert ratekeeper_main(["bench", "--no-such-option"]) == 2
    assert "usage: ratekeeper bench" in capfd.readouterr().err


def test_ratekeeper_bench_without_a_checkout_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_command, "checkout", lambda: None)
    assert ratekeeper_main(["bench", "--quick"]) == 2
    assert "source checkout" in capsys.readouterr().err
