"""(c) 20 client processes at 10x a 100/s policy for 10 s against a real ``ratekeeper serve``.

Batch reporting trades exactness for a decision with no network call; the design target is a
run-long total within 5% of what the token bucket allows, ``r * T + b``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from integration.services import ratekeeper_server

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("overshoot_worker.py")
CLIENTS = 20
RATE, BURST, SECONDS = 100, 100, 10.0
CONFIG = f"""\
domain: default
descriptors:
  - key: key
    value: shared
    rate_limit:
      unit: second
      requests_per_unit: {RATE}
"""


@pytest.mark.timeout(180)
def test_twenty_clients_at_ten_times_the_policy_stay_within_five_percent(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    per_client = 10 * RATE / CLIENTS
    argv = [sys.executable, str(WORKER), str(per_client), str(SECONDS)]
    workers = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(CLIENTS)
    ]
    try:
        with ratekeeper_server(config, tmp_path) as server:  # starts while the workers import
            for worker in workers:  # every client is ready before any starts
                assert worker.stdout is not None
                assert worker.stdout.readline().strip() == "ready"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(server.grpc_target + "\n")
                worker.stdin.flush()
            results = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    admitted = sum(r["admitted"] for r in results)
    offered = sum(r["offered"] for r in results)
    allowed = RATE * SECONDS + BURST
    print(f"offered {offered}, admitted {admitted}, policy allows {allowed:.0f}")
    assert offered > 8 * allowed  # the clients really did offer ~10x the policy
    assert abs(admitted - allowed) <= 0.05 * allowed
