"""The fan-in benchmark end to end, tiny: a real server (or a 2-member cluster), one load process
of real client machines, the probes; every figure of the summary is produced."""

from __future__ import annotations

import json

import pytest

from bench.fanin import main, percentile
from bench.report_apply import cpu_per_key_update
from bench.report_build import build_cost


def test_percentile_reads_the_sorted_values() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0] * 99 + [9.0], 0.99) == 9.0


@pytest.mark.timeout(180)
def test_a_small_fan_in_run_answers_reports_and_measures_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--clients", "4", "--procs", "1", "--keys", "20", "--duration", "3", "--warmup", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"reports_answered"' in out
    assert '"server_cpu_us_per_key_update"' in out
    assert '"reports_answered": 0,' not in out


@pytest.mark.timeout(240)
def test_a_small_fan_in_run_against_a_cluster_reports_to_every_member(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--cluster", "2", "--clients", "4", "--procs", "1", "--keys", "20"]
    assert main([*argv, "--duration", "3", "--warmup", "2"]) == 0
    out = capsys.readouterr().out
    summary = json.JSONDecoder().raw_decode(out)[0]  # the JSON object, then the row
    assert summary["reports_answered"] > 0
    assert len(summary["member_cpu_us_per_key_update"]) == 2
    # given member 0's address, the clients learned the assignment and reported to both owners
    assert all(share > 0 for share in summary["member_share_pct"])
    assert summary["unknown_servers"] == []
    assert out.rstrip().splitlines()[-1].startswith("| 4 | 20 |")


def test_replayed_clients_do_not_route_so_refuse_a_cluster() -> None:
    with pytest.raises(SystemExit):
        main(["--cluster", "2", "--replay"])


def test_the_compact_wire_carries_a_key_update_in_a_few_bytes() -> None:
    result = cpu_per_key_update(clients=2, keys=50, rounds=3, wire="compact")
    assert result["request_bytes_per_key_update"] <= 16
    assert result["response_bytes_per_key_update"] <= 16
    full = cpu_per_key_update(clients=2, keys=50, rounds=3, wire="full")
    assert full["request_bytes_per_key_update"] > 16  # the descriptor, every time


def test_report_building_costs_are_measured_per_key() -> None:
    result = build_cost(keys=100, rounds=3, wire="compact")
    assert result["total_us_per_key"] > 0
