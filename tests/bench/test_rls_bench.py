"""The RLS benchmark's parts: workload, hash routing, load process and handler timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.noop_rls import READY_LINE
from bench.rls_bench import Sample, render
from bench.rls_handler import handler_cpu_us
from bench.rls_instructions import VARIANTS
from bench.rls_load import DOMAIN, WORKLOAD_CONFIG, even_assignment, owner, traffic, workload_keys
from ratekeeper.config import load_config
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.testing.procs import free_port, log_line, start


def test_every_workload_key_matches_a_rule(tmp_path: Path) -> None:
    (tmp_path / "bench.yaml").write_text(WORKLOAD_CONFIG)
    policy = load_config(tmp_path)
    keys = workload_keys(1000)
    assert len(set(keys)) == 1000
    assert all(policy.match(DOMAIN, entries) is not None for entries in keys)


def test_hot_keys_come_up_ten_times_as_often() -> None:
    mix = traffic(1000)
    assert len(mix) == 1000 + 50 * 9
    assert mix.count(workload_keys(1000)[0]) == 10
    assert mix.count(workload_keys(1000)[999]) == 1


def test_two_targets_own_the_two_halves_of_the_hash_space() -> None:
    assignment = even_assignment(["low:1", "high:2"])
    keys = workload_keys(1000)
    for entries in keys:
        high = key_hash(canonical_bytes(DOMAIN, entries)) >= 1 << 63
        assert owner(assignment, entries) == ("high:2" if high else "low:1")
    share = sum(owner(assignment, k) == "low:1" for k in keys) / len(keys)
    assert 0.4 < share < 0.6


@pytest.mark.integration
@pytest.mark.parametrize("flags", [[], ["--raw"]], ids=["protobuf", "raw"])
def test_the_load_process_drives_a_real_server(tmp_path: Path, flags: list[str]) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bench.noop_rls", "--grpc-port", str(port), *flags]
    with start(argv, name="noop", log_dir=tmp_path, ready=log_line(READY_LINE)) as server:
        latencies = tmp_path / "latencies.bin"
        load = [sys.executable, "-m", "bench.rls_load", "--target", f"127.0.0.1:{port}"]
        load += ["--server-pid", str(server.pid), "--duration", "0.5", "--warmup", "0.2"]
        load += ["--concurrency", "4", "--latency-file", str(latencies)]
        done = subprocess.run(load, capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout)
    assert result["calls"] > 0
    assert result["errors"] == 0
    assert len(result["server_cpu_s"]) == 1
    assert latencies.stat().st_size == 8 * result["calls"]


def test_handler_timing_covers_both_servicers() -> None:
    figures = handler_cpu_us(rounds=1, calls=200)
    assert set(figures) == {"no-op", "ratekeeper"}
    assert all(us > 0 for us in figures.values())


def test_the_table_reports_ratios_within_each_round() -> None:
    def sample(rps: float, cpu_us: float, processes: int = 1) -> Sample:
        return Sample(rps, 1.0, 2.0, (50.0,) * processes, cpu_us, 30.0, 0.0, 0)

    table = render(
        {
            ("no-op", 1): [sample(1000, 100), sample(2000, 100)],
            ("ratekeeper", 1): [sample(800, 130), sample(1600, 130)],
            ("no-op", 2): [sample(1000, 100, 2)] * 2,
            ("ratekeeper", 2): [sample(900, 110, 2)] * 2,
        }
    )
    rows = [line for line in table.splitlines() if line.startswith("| ratekeeper |")]
    assert rows == [
        "| ratekeeper | 1 | 1,200 | 1.00 | 2.00 | 50 | 130 | 30 | 0.80 | 1.30 |",
        "| ratekeeper | 2 | 900 | 1.00 | 2.00 | 50 + 50 | 110 | 30 | 0.90 | 1.10 |",
    ]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_instruction_count_variant_runs_its_calls(variant: str) -> None:
    # What runs under callgrind (valgrind itself is too slow for the suite), in a child: it
    # tunes the garbage collector as the server does, process-wide.
    argv = [sys.executable, "-m", "bench.rls_instructions", "--child", variant, "--calls", "20"]
    subprocess.run(argv, capture_output=True, timeout=120, check=True)
