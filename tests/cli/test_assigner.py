"""``ratekeeper assigner``: its flags, and a real process answering Heartbeat, Watch and Status."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from ratekeeper.assigner.options import from_sources
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.cli.main import build_parser, main
from ratekeeper.core.assignment_diff import apply_update
from ratekeeper.errors import ConfigError
from ratekeeper.proto.assignment import generation_to_wire, update_from_wire
from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.procs import free_port, log_line, start
from ratekeeper.transport.channels import open_channel

NS = 1_000_000_000


def test_flags_override_variables_which_override_defaults() -> None:
    env = {"RATEKEEPER_UNHEALTHY_AFTER": "5", "RATEKEEPER_ASSIGNER_LISTEN": "0.0.0.0:7000"}
    settings = from_sources({"unhealthy_after": "0.6", "heartbeat_interval": "0.1"}, env)
    assert settings.listen == "0.0.0.0:7000"
    assert (settings.unhealthy_after_s, settings.heartbeat_interval_s) == (0.6, 0.1)
    assert from_sources({}, {}) == AssignerSettings()
    with pytest.raises(ConfigError, match="--min-interval"):
        from_sources({"min_interval": "soon"}, {})
    with pytest.raises(ConfigError, match="longer than heartbeat_interval"):
        from_sources({"unhealthy_after": "0.5", "heartbeat_interval": "1"}, {})


def test_the_log_level_takes_any_case() -> None:
    args = build_parser().parse_args(["assigner", "--log-level", "debug"])
    assert args.log_level == "DEBUG"


def test_bad_timeouts_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assigner", "--heartbeat-interval", "2", "--unhealthy-after", "1"]) == 2
    assert "unhealthy_after" in capsys.readouterr().err


@pytest.mark.integration
def test_an_assigner_process_assigns_watches_and_reports(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "assigner", "--listen", listen]
    argv += ["--heartbeat-interval", "0.1", "--unhealthy-after", "0.5"]
    with (
        start(
            argv, name="assigner", log_dir=tmp_path, ready=log_line("assigner listening on")
        ) as proc,
        open_channel(listen) as channel,
    ):
        calls = AssignerCalls(channel)
        # the first heartbeat comes before the settle time is over; later ones carry the whole
        a = pb.HeartbeatRequest(address="127.0.0.1:9001", state=pb.RUNNING, incarnation_id="a1")
        first = calls.heartbeat(a, timeout=10)
        assert first.heartbeat_interval_ns == NS // 10
        assert first.unhealthy_after_ns == NS // 2
        whole = update_from_wire(calls.watch(pb.WatchRequest(wait_ns=5 * NS), timeout=10).update)
        assert whole is not None
        held = apply_update(None, whole)
        assert held.servers == {"127.0.0.1:9001"}

        # a watcher holding the current generation waits; a join wakes it with the change
        answers: list[pb.WatchResponse] = []
        known = generation_to_wire(held.generation)
        watcher = threading.Thread(
            target=lambda: answers.append(
                calls.watch(pb.WatchRequest(known=known, wait_ns=10 * NS), timeout=15)
            )
        )
        watcher.start()
        b = pb.HeartbeatRequest(address="127.0.0.1:9002", state=pb.RUNNING, incarnation_id="b1")
        calls.heartbeat(b, timeout=10)  # joins within the batch window share the next round
        watcher.join(15)
        assert answers
        update = update_from_wire(answers[0].update)
        assert update is not None
        after = apply_update(held, update)
        assert after.servers == {"127.0.0.1:9001", "127.0.0.1:9002"}
        assert update_from_wire(calls.heartbeat(b, timeout=10).update) == after

        status = calls.status(pb.StatusRequest(), timeout=10)
        assert status.assigner == listen
        assert sorted((m.address, m.state, m.slices > 0) for m in status.members) == [
            ("127.0.0.1:9001", pb.RUNNING, True),
            ("127.0.0.1:9002", pb.RUNNING, True),
        ]
        proc.stop()
        assert proc.popen.returncode == 0  # SIGTERM is a clean stop
