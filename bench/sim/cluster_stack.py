"""The server side of a cluster architecture (B3, C3): an assigner and N members, for one run.

Each member advertises the address of a latency relay in front of it, so everything that would
cross hosts in production — clients to members, forwarded RLS calls, hand-offs between members —
goes through the run's network model; heartbeats to the assigner stay on plain loopback (they
carry no requests). Clients are given member 0's address: a Limiter learns the assignment from
it, an RLS caller is forwarded by it. ``/metrics`` is summed over the members, each member's
counters carried across its own restarts.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psutil

from bench.sim.archs import Architecture
from bench.sim.spec import Run
from bench.sim.stacked import Stacked
from ratekeeper.testing.cluster import Cluster
from ratekeeper.testing.server_process import metric_samples

__all__ = ["ClusterStack"]


class ClusterStack(Stacked):
    """A cluster run's processes; a context manager that stops everything it started. It has
    the interface of :class:`bench.sim.runner.Stack` the runner uses."""

    def __init__(self, arch: Architecture, run: Run, workdir: Path, policy: str) -> None:
        super().__init__(workdir)
        self.arch, self.run = arch, run
        config = workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        self.config = config / "bench.yaml"
        self.config.write_text(policy)
        self._relays: dict[int, str] = {}
        self._base: dict[tuple[int, str], float] = {}
        self._last: dict[tuple[int, str], float] = {}
        self.cluster = Cluster(
            arch.servers,
            log_dir=workdir,
            config=config,
            server_flags=("--reload-interval", "0", "--log-level", "WARNING", *arch.serve_args),
            advertise=self._advertised,
            heartbeat_interval=0.25,
            unhealthy_after=1.0,
            load_interval=5.0,  # as the published cluster rows were measured
        )
        self.target = ""

    def _start(self) -> None:
        self.cluster.start()
        self._exit.callback(self.cluster.stop)
        self.target = self.cluster.addresses[0]

    def _advertised(self, grpc_port: int) -> str:
        """The relay in front of a member's port (started once per port, kept across its
        restarts), or the port itself on plain loopback."""
        if grpc_port not in self._relays:
            self._relays[grpc_port] = f"127.0.0.1:{self._relay(grpc_port)}"
        return self._relays[grpc_port]

    def _relay(self, port: int) -> int:
        seed = self.run.shape.seed * 1000 + len(self._relays)
        return self._relayed(port, self.run.network, seed, f"relay-{port}")

    # --- the events of a shape --------------------------------------------------------------

    def restart(self) -> float:
        """Every member restarted at once is not a cluster event: restart member 0 (drained)."""
        return self._restart(0)

    def kill_one(self) -> None:
        """kill -9 member 1, for good."""
        self.cluster.kill(1)

    def rolling_restart(self) -> float:
        """Restart each member in turn (SIGTERM drains it: its slices and counters move),
        waiting until it owns slices again; the total time taken."""
        return sum(self._restart(i) for i in range(len(self.cluster.servers)))

    def _restart(self, i: int) -> float:
        began = time.monotonic()
        self.cluster.restart(i)
        return time.monotonic() - began

    # --- what the runner samples ------------------------------------------------------------

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU used so far by the members' current processes (no Redis)."""
        total = 0.0
        for server in self.cluster.servers:
            with contextlib.suppress(psutil.Error):
                if server.process.alive():
                    times = psutil.Process(server.process.pid).cpu_times()
                    total += times.user + times.system
        return total, 0.0

    def scrape(self) -> dict[str, float]:
        """``/metrics`` summed over the members, as {``name{labels}``: value}; each member's
        counter is carried across its restarts, so the sum only grows."""
        totals: dict[str, float] = {}
        for index, server in enumerate(self.cluster.servers):
            try:
                samples = metric_samples(server.http_port)
            except OSError:  # down: it keeps what it last said
                samples = []
            for sample in samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                name = f"{sample.name}{{{labels}}}" if labels else sample.name
                key = (index, name)
                if sample.value < self._last.get(key, 0.0):  # that member restarted
                    self._base[key] = self._base.get(key, 0.0) + self._last[key]
                self._last[key] = sample.value
        for (_, name), value in self._last.items():
            totals[name] = totals.get(name, 0.0) + value
        for (_, name), value in self._base.items():
            totals[name] = totals.get(name, 0.0) + value
        return totals
