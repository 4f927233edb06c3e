"""The garbage collection benchmark runs end to end and prints its table."""

from __future__ import annotations

import subprocess
import sys

from bench.gc_pauses import GcRun, render


def test_a_small_run_prints_one_row_per_key_count() -> None:
    # A child process: the benchmark sets the collector up as the server does, process-wide.
    argv = [sys.executable, "-m", "bench.gc_pauses", "--keys", "50", "200", "--passes", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 50 ", "| 200 "))]
    assert len(rows) == 2
    assert rows[1].startswith("| 200 | 290 |")  # 200 keys, the hot 10 sent ten times


def test_the_table_reports_shares_and_pauses() -> None:
    run = GcRun(1000, 2000, 2.0, [10, 1, 1], [0.01, 0.01, 0.08], 0.08, 12345, 0.05)
    assert render([run]).splitlines()[-1] == (
        "| 1,000 | 2,000 | 12,345 | 5.0% | 1 | 80.0 ms | 50 ms |"
    )
