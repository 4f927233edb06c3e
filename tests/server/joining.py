"""Servers joining a real assigner in process, over loopback gRPC: the settings, the policy and
the helpers that the slicelet and hand-off tests share (their fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.core.slices import Assignment
from ratekeeper.server.app import Replica, build
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ClusterSettings, ServerSettings

#: The policy every joined server runs: 10 a minute per user.
CONFIG = """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 10}
"""

#: Fast enough for tests, slow enough for two shared cores.
ASSIGNER = AssignerSettings(
    listen="127.0.0.1:0",
    heartbeat_interval_s=0.1,
    unhealthy_after_s=1.0,
    settle_s=0.0,
    min_interval_s=0.2,
    load_interval_s=60.0,
)


def cluster(join: str, **fields: Any) -> ClusterSettings:
    """A member's cluster settings joining through ``join``, with test timings."""
    timings: dict[str, Any] = {
        "heartbeat_interval_s": 0.1,
        "heartbeat_timeout_s": 0.5,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
        "watch_wait_s": 2.0,
        "drain_timeout_s": 3.0,
    }
    return ClusterSettings(join=join, **{**timings, **fields})


#: ``await join(address, grpc_port=0, **cluster fields)``: a started member.
Join = Callable[..., Awaitable[Replica]]


async def joining(tmp_path: Path) -> AsyncIterator[Join]:
    """Yields :data:`Join`; every server it started is stopped afterwards."""
    (tmp_path / "api.yaml").write_text(CONFIG)
    started: list[Replica] = []

    async def start(address: str, grpc_port: int = 0, **fields: Any) -> Replica:
        settings = with_options(
            ServerSettings(), grpc_port=grpc_port, http_port=0, config=str(tmp_path)
        )
        settings = dataclasses.replace(settings, cluster=cluster(address, **fields))
        replica = Replica(build(settings))
        await replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in reversed(started):
        await replica.stop(0)


def slicelet_of(replica: Replica) -> Any:
    slicelet = replica.components.slicelet
    assert slicelet is not None
    return slicelet


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def agreed(*replicas: Replica) -> Assignment | None:
    """The assignment every replica holds, if they hold the same one naming all of them."""
    held = {slicelet_of(r).assignment for r in replicas}
    if len(held) != 1:
        return None
    (assignment,) = held
    names = {slicelet_of(r).address for r in replicas}
    return assignment if assignment is not None and assignment.servers == names else None


async def settled(*replicas: Replica) -> Assignment:
    """Waits until the replicas hold one assignment naming all of them, and returns it."""
    await until(lambda: agreed(*replicas) is not None)
    held = agreed(*replicas)
    assert held is not None
    return held
