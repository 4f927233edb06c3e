"""``python -m bench.assigner_heartbeats``: a real ``ratekeeper assigner`` under many members.

Simulated members (asyncio, in this process) heartbeat a real assigner process over loopback.
They start as one member, then all the others join together, and everyone heartbeats every
``--period`` seconds, each reporting a load on the slices it holds. The script measures
heartbeat latency (p50 and p99), how many assignments the join storm caused, the slices of the
last one, and how long one Status call takes. Members that share an update share the decoding of
it, so the simulated side stays light next to the assigner.

    python -m bench.assigner_heartbeats --members 64 --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ratekeeper.core.assignment_diff import apply_update
from ratekeeper.core.slices import Assignment
from ratekeeper.proto.assignment import generation_to_wire, high_to_wire, update_from_wire
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.cluster import assigner_argv
from ratekeeper.testing.procs import free_port, log_line, start
from ratekeeper.transport.channels import open_aio_channel


class Fleet:
    """``n`` simulated members of one assigner."""

    def __init__(self, calls: AssignerCallsAio, n: int) -> None:
        self.calls = calls
        self.addresses = [f"127.0.0.1:{20000 + i}" for i in range(n)]
        self.held: dict[str, Assignment] = {}
        self.decoded: dict[bytes, Assignment] = {}
        self.latencies: list[float] = []

    async def beat(self, i: int) -> None:
        address = self.addresses[i]
        request = pb.HeartbeatRequest(address=address, state=pb.RUNNING, incarnation_id="bench")
        held = self.held.get(address)
        if held is not None:
            request.known.CopyFrom(generation_to_wire(held.generation))
            for s in held.slices_of(address):
                request.load.append(pb.SliceLoad(low=s.low, high=high_to_wire(s.high), load=10.0))
        began = time.perf_counter()
        response = await self.calls.heartbeat(request, timeout=30)
        self.latencies.append(time.perf_counter() - began)
        if response.HasField("update"):
            key = response.update.SerializeToString()
            if key not in self.decoded:
                update = update_from_wire(response.update)
                assert update is not None
                self.decoded[key] = apply_update(held, update)
            self.held[address] = self.decoded[key]


async def run(address: str, members: int, rounds: int, period: float) -> pb.StatusResponse:
    channel = open_aio_channel(address)
    fleet = Fleet(AssignerCallsAio(channel), members)
    await fleet.beat(0)
    await asyncio.sleep(1.5)  # past the settle time: member 0 owns everything
    await fleet.beat(0)
    for _ in range(rounds):
        await asyncio.gather(*(fleet.beat(i) for i in range(members)))
        await asyncio.sleep(period)
    began = time.perf_counter()
    status = await fleet.calls.status(pb.StatusRequest(), timeout=30)
    status_ms = (time.perf_counter() - began) * 1e3
    await channel.close(None)
    lat = sorted(fleet.latencies)
    print(
        f"{members} members x {rounds} rounds: heartbeat p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.1f} ms; Status {status_ms:.1f} ms; "
        f"{len(status.assignment.starts)} slices, {len(status.members)} members alive"
    )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assigner_heartbeats")
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--period", type=float, default=0.2, help="Seconds between rounds.")
    parser.add_argument("--heartbeat-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="assigner-bench-"))
    address = f"127.0.0.1:{free_port()}"
    argv_ = assigner_argv(
        address,
        *("--heartbeat-interval", str(args.heartbeat_interval), "--unhealthy-after", "5"),
        *("--min-interval", "1", "--load-interval", "2"),
    )
    with start(argv_, name="assigner", log_dir=log_dir, ready=log_line("listening on")) as proc:
        asyncio.run(run(address, args.members, args.rounds, args.period))
        made = re.findall(r"assignment \S+: (\d+) slices on (\d+) members", proc.log_text())
    print(f"assignments made: {len(made)} ({', '.join(f'{m} members' for _, m in made)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
