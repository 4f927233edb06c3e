"""Server instructions per key-update, report listener vs gRPC port, with real clients.

One ``ratekeeper serve`` under valgrind (callgrind, instrumentation off at start), real client
machines driven by ``bench.fanin``'s load process against it; after ``--warmup`` seconds the
server's instrumentation is switched on for ``--duration`` seconds (``callgrind_control -i``),
and its instructions over that window are divided by the key-updates the clients had answered
in it. Run once with ``--report-port 0`` (the clients follow it) and once without. Counts user
space only (valgrind does not see the kernel: grpc.aio's extra context switches are not in
it), and is immune to the machine's other load; the load is small, as valgrind slows the server
about fifty times.

    python -m bench.report_listener_instructions            # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fanin import FANIN_CONFIG
from ratekeeper.testing.procs import free_port, http_get
from ratekeeper.testing.server_process import serve_argv

__all__ = ["main", "measure"]

_COLLECTED = re.compile(rb"Collected : (\d+)")


def _ready(http_port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            http_get(http_port, "/healthcheck")
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server under valgrind did not start")


def measure(listener: bool, clients: int, rate: float, duration: float, warmup: float) -> Any:
    """Instructions per answered key-update over the window, and what was answered."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        config.mkdir()
        (config / "fanin.yaml").write_text(FANIN_CONFIG)
        grpc_port, http_port = free_port(), free_port()
        flags = ("--report-port", "0") if listener else ()
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        argv += ["--callgrind-out-file=/dev/null"]
        argv += serve_argv(config, grpc_port, http_port, *flags)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        server = subprocess.Popen(argv, stderr=subprocess.PIPE, env=env)
        try:
            _ready(http_port)
            load = [sys.executable, "-m", "bench.fanin", "--child", "--target"]
            load += [f"127.0.0.1:{grpc_port}", "--first", "0", "--count", str(clients)]
            load += ["--wire", "compact", "--keys", "100", "--rate", str(rate)]
            load += ["--duration", str(duration), "--warmup", str(warmup)]
            child = subprocess.Popen(load, stdout=subprocess.PIPE)
            time.sleep(warmup)
            subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                           capture_output=True)  # fmt: skip
            time.sleep(duration)
            subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                           capture_output=True)  # fmt: skip
            tally = json.loads(child.communicate(timeout=600)[0])
        finally:
            server.send_signal(signal.SIGINT)
            _, err = server.communicate(timeout=600)
    found = _COLLECTED.search(err)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{err[-2000:]!r}")
    instructions = int(found.group(1))
    updates = max(tally["key_updates"], 1)
    return {
        "listener": "report" if listener else "grpc",
        "instructions_per_key_update": round(instructions / updates),
        "instructions_per_report": round(instructions / max(tally["answered"], 1)),
        "reports_answered": tally["answered"],
        "reports_via_listener": tally["via_listener"],
        "reports_failed": tally["failed"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_listener_instructions")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2.0, help="reports per second per client")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args(argv)
    for listener in (True, False):
        print(json.dumps(measure(listener, args.clients, args.rate, args.duration, args.warmup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
