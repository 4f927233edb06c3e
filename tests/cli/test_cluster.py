"""``ratekeeper cluster status`` against a real assigner, and ``cluster up`` as real processes."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest

from ratekeeper.cli.cluster import format_status
from ratekeeper.cli.main import main
from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.procs import free_port, log_line, port_open, start
from ratekeeper.transport.channels import open_channel

RK = [sys.executable, "-m", "ratekeeper.cli.main"]


def test_status_is_printed_as_a_table() -> None:
    status = pb.StatusResponse(assigner="127.0.0.1:8070", imbalance=1.25)
    status.assignment.generation.incarnation = 17
    status.assignment.generation.number = 4
    status.assignment.servers.extend(["127.0.0.1:9001"])
    status.assignment.starts.extend([0, 2**63])
    status.assignment.owners.extend([0, 0])
    status.members.append(
        pb.MemberStatus(
            address="127.0.0.1:9001",
            state=pb.RUNNING,
            heartbeat_age_ns=200_000_000,
            slices=2,
            load=12.5,
        )
    )
    status.members.append(pb.MemberStatus(address="127.0.0.1:9002", state=pb.TERMINATING))
    lines = format_status(status).splitlines()
    assert lines[:4] == [
        "assigner    127.0.0.1:8070",
        "generation  17.4",
        "slices      2",
        "imbalance   1.250",
    ]
    assert lines[6].split() == ["127.0.0.1:9001", "RUNNING", "2", "12.5", "0.2s", "ago"]
    assert lines[7].split()[:3] == ["127.0.0.1:9002", "TERMINATING", "0"]
    assert "none yet" in format_status(pb.StatusResponse())


def test_status_of_an_unreachable_address_fails_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cluster", "status", f"127.0.0.1:{free_port()}", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err
    assert main(["cluster", "status", "no-port"]) == 2


@pytest.mark.integration
def test_status_shows_what_a_real_assigner_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    argv = [*RK, "assigner", "--listen", listen, "--heartbeat-interval", "0.1"]
    with start(argv, name="assigner", log_dir=tmp_path, ready=log_line("listening on")):
        with open_channel(listen) as channel:
            calls = AssignerCalls(channel)
            for address in ("127.0.0.1:9001", "127.0.0.1:9002"):
                beat = pb.HeartbeatRequest(address=address, state=pb.RUNNING, incarnation_id="1")
                calls.heartbeat(beat, timeout=10)
            deadline = time.monotonic() + 10
            while not calls.status(pb.StatusRequest(), timeout=10).assignment.servers:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert main(["cluster", "status", listen]) == 0
    out = capsys.readouterr().out
    assert f"assigner    {listen}" in out
    assert re.search(r"^generation  \d+\.[12]$", out, re.MULTILINE)
    assert re.search(r"^127\.0\.0\.1:9001 +RUNNING +[1-9]", out, re.MULTILINE)
    assert re.search(r"^127\.0\.0\.1:9002 +RUNNING +[1-9]", out, re.MULTILINE)


@pytest.mark.integration
def test_cluster_up_runs_members_until_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("ratekeeper.server.slicelet", reason="serve --join is not merged yet")
    argv = [*RK, "cluster", "up", "-n", "2", "--log-dir", str(tmp_path / "logs")]
    argv += ["--heartbeat-interval", "0.2", "--unhealthy-after", "1"]
    up = start(argv, name="up", log_dir=tmp_path, ready=log_line("^logs "), timeout=120)
    try:
        text = up.log_text()
        assigner = re.search(r"^assigner (\S+)$", text, re.MULTILINE)
        members = re.findall(r"^member (\S+) http", text, re.MULTILINE)
        assert assigner is not None
        assert len(members) == 2
        with open_channel(assigner.group(1)) as channel:
            status = AssignerCalls(channel).status(pb.StatusRequest(), timeout=10)
        assert set(status.assignment.servers) == set(members)
        assert {m.state for m in status.members} == {pb.RUNNING}
    finally:
        up.popen.send_signal(signal.SIGTERM)  # to the runner alone: it stops its children
        assert up.popen.wait(timeout=60) == 0
    assert "stopped" in up.log_text()
    for member in members:
        host, _, port = member.rpartition(":")
        assert not port_open(int(port), host)(up)
