"""The forwarding benchmark: its table's verdicts, and a short run against real members."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.forward_bench import Row, render


def test_the_table_says_met_or_missed_against_twice_the_local_p99() -> None:
    rows = [
        Row(8, "local", 100, 1.0, 2.0, 110, 300.0),
        Row(8, "forwarded, coalesced", 100, 1.5, 4.0, 110, 500.0),
        Row(8, "forwarded, one call each", 100, 2.0, 4.5, 110, 900.0),
    ]
    table = render(rows).splitlines()
    assert table[2].startswith("| 8 | local |")
    assert "| 2.00× | met |" in table[3]
    assert "| 2.25× | MISSED |" in table[4]


@pytest.mark.integration
def test_a_short_run_measures_every_mode() -> None:
    argv = [sys.executable, "-m", "bench.forward_bench", "--concurrency", "2"]
    argv += ["--rounds", "1", "--warmup", "0.1", "--duration", "0.5"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("| 2 |")]
    assert [line.split("|")[2].strip() for line in lines] == [
        "local",
        "forwarded, coalesced",
        "forwarded, one call each",
    ]
    assert "requests per call" in done.stdout
