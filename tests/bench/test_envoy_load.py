"""bench.envoy_load: the quantile grid, its pooling over slices, and the real-time conditions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.envoy_load import GRID, Conditions, Slice, pooled, wrk, wrk_script


def _uniform(requests: int, low: int, high: int) -> Slice:
    """A slice whose latencies are spread evenly over [low, high]."""
    return Slice(requests, 0, tuple(round(low + (high - low) * p / 100) for p in GRID))


def test_one_slice_pools_to_itself() -> None:
    one = _uniform(1000, 100, 1100)
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert pooled([one], p) == one.at(p)


def test_pooling_weights_each_slice_by_its_requests() -> None:
    fast, slow = _uniform(9000, 100, 200), _uniform(1000, 1000, 2000)
    # 90% of the requests are fast: the pooled p50 is fast, the p99 is slow's own p90.
    assert pooled([fast, slow], 50.0) == pytest.approx(fast.at(55.6), abs=2)
    assert pooled([fast, slow], 99.0) == pytest.approx(slow.at(90.0), abs=2)
    assert pooled([slow, fast], 99.0) == pooled([fast, slow], 99.0)


def test_the_script_prints_the_grid() -> None:
    script = wrk_script(pace_ms=2)
    assert "delay = function() return 2 end" in script
    assert script.count(",") >= len(GRID) - 1
    assert "delay" not in wrk_script()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_wrk_reads_the_grid_from_a_real_server(tmp_path: Path) -> None:
    argv = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=tmp_path, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
            port = int(line.split(" port ")[1].split()[0])
            script = tmp_path / "s.lua"
            script.write_text(wrk_script())
            got = wrk(port, 1, script)
        finally:
            server.terminate()
    assert got.requests > 0
    assert got.errors == 0
    assert len(got.quantiles) == len(GRID)
    assert list(got.quantiles) == sorted(got.quantiles)


def test_realtime_is_undone_after_the_block() -> None:
    if not Conditions.realtime_allowed():
        pytest.skip("not allowed to set real-time scheduling here")
    me = frozenset({os.getpid()})
    with Conditions(realtime=True).measuring(me):
        assert os.sched_getscheduler(0) == os.SCHED_RR
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
