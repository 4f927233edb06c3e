"""The process helper on real child processes: readiness, logs, and the stop escalation."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import psutil
import pytest

from ratekeeper.testing.procs import ProcessError, free_port, http_ok, log_line, port_open, start

pytestmark = pytest.mark.integration


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_log_line_readiness_and_sigterm_stop(tmp_path: Path) -> None:
    code = "import time; print('serving now', flush=True); time.sleep(60)"
    with start(_python(code), name="child", log_dir=tmp_path, ready=log_line(r"^serving")) as p:
        assert p.alive()
        assert "serving now" in p.log_text()
    assert p.popen.returncode == -signal.SIGTERM


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = start(_python(code), name="stubborn", log_dir=tmp_path, ready=log_line("ready"))
    assert proc.stop(grace=0.3) == -signal.SIGKILL


def test_exit_before_ready_raises_with_the_log_tail(tmp_path: Path) -> None:
    code = "print('bad config: nope', flush=True); raise SystemExit(3)"
    with pytest.raises(ProcessError, match=r"(?s)exit code 3.*bad config: nope"):
        start(_python(code), name="broken", log_dir=tmp_path, ready=log_line("never"))


def test_a_timeout_stops_the_child_before_raising(tmp_path: Path) -> None:
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with pytest.raises(ProcessError, match="not ready after"):
        start(_python(code), name="slow", log_dir=tmp_path, ready=lambda p: False, timeout=0.5)
    pid = int((tmp_path / "slow.log").read_text().split()[0])
    assert not psutil.pid_exists(pid)


def test_port_and_http_readiness(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with start(argv, name="http", log_dir=tmp_path, ready=http_ok(port, "/"), cwd=tmp_path) as p:
        assert port_open(port)(p)
    assert not port_open(port)(p)
