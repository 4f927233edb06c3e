"""Run one shape against one architecture: real processes on loopback, then collect the records.

A :class:`Stack` owns the server-side processes of one run (redis-server, ``ratekeeper serve``
and the latency relays in front of them) and stops every one of them on exit. :func:`play`
starts the client processes, lines them up on a common start (a whole wall-clock second, so the
service's epoch-aligned fixed windows line up with the schedule's bursts), restarts the service
if the shape says so, samples ``/metrics`` and the service's CPU, and returns what happened.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt
import psutil

from bench.sim import schedule
from bench.sim.archs import DOMAIN, KEY_NAME, Architecture
from bench.sim.cluster_stack import ClusterStack
from bench.sim.spec import Run
from bench.sim.stacked import REPO, Stacked
from bench.sim.worker import ClientPlan, WorkerPlan, load_records, run_worker
from ratekeeper.testing.procs import ManagedProcess, ReadyCheck, free_port, start
from ratekeeper.testing.redis_server import RedisServer
from ratekeeper.testing.server_process import START_TIMEOUT_S, metric_samples, serve_argv, serving

__all__ = ["Played", "Stack", "play"]

#: Most client processes per run; each runs its share of the clients as threads.
MAX_WORKERS = 4
#: How often /metrics is sampled.
SCRAPE_S = 0.5
#: Slack after the schedule ends before client processes are declared stuck.
FINISH_GRACE_S = 60.0


@dataclass(slots=True)
class Played:
    """What one run of one architecture produced."""

    arch: str
    #: Decision records, sorted by time: at_ns, latency_ns, admitted, error, key.
    records: dict[str, npt.NDArray[Any]]
    #: CPU seconds of the service (every incarnation) and of redis-server, over the run.
    service_cpu_s: float
    redis_cpu_s: float
    #: ``(seconds from start, {sample: value})`` from /metrics (see :meth:`Stack.scrape`).
    scrapes: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    #: Seconds the service was down during a restart.
    downtime_s: float | None = None


def _policy_yaml(run: Run) -> str:
    """The policy file the service and every client load: the shape's whole policy in the
    one-string form (several limits, bursts, custom periods). A's fixed windows take the rate
    of each limit and have no burst to express, as envoyproxy/ratelimit's."""
    text = "; ".join(str(limit) for limit in run.shape.policy)
    return f'domain: {DOMAIN}\ndescriptors:\n  - key: {KEY_NAME}\n    limit: "{text}"\n'


class Stack(Stacked):
    """The server side of one run; a context manager that stops everything it started."""

    def __init__(self, arch: Architecture, run: Run, workdir: Path) -> None:
        super().__init__(workdir)
        self.arch, self.run = arch, run
        self.grpc_port, self.http_port = free_port(), free_port()
        self.redis: RedisServer | None = None
        self.service: ManagedProcess | None = None
        self._cpu_done = 0.0  # CPU of service incarnations already stopped

    def _spawn(self, argv: list[str], name: str, ready: ReadyCheck) -> ManagedProcess:
        log_dir, timeout = self.workdir, START_TIMEOUT_S
        proc = start(argv, name=name, log_dir=log_dir, ready=ready, timeout=timeout, cwd=REPO)
        self._exit.callback(proc.stop)
        return proc

    def _remote(self, port: int, name: str) -> int:
        """The port to reach ``port`` through the network model (itself on plain loopback)."""
        return self._relayed(port, self.run.network, self.run.shape.seed * 1000 + len(name), name)

    def _start(self) -> None:
        config = self.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        self.config = config / "bench.yaml"
        self.config.write_text(_policy_yaml(self.run))
        backend = "memory://"
        if self.arch.redis:
            self.redis = RedisServer(self.workdir)
            self._exit.callback(self.redis.stop)
            backend = f"redis://127.0.0.1:{self._remote(self.redis.port, 'relay-redis')}/0"
        self._serve_argv = serve_argv(
            config,
            self.grpc_port,
            self.http_port,
            *("--backend", backend, "--reload-interval", "0", "--log-level", "WARNING"),
            *self.arch.serve_args,
        )
        self.service = self._start_service()
        self.target = f"127.0.0.1:{self._remote(self.grpc_port, 'relay-service')}"

    def _start_service(self) -> ManagedProcess:
        return self._spawn(self._serve_argv, "service", serving(self.http_port))

    def kill_one(self) -> None:
        """kill -9 the service, for good (one server: an outage the clients ride out)."""
        assert self.service is not None
        self._cpu_done += _cpu(self.service)
        self.service.kill()

    def rolling_restart(self) -> float:
        """One server: a rolling restart is a restart."""
        return self.restart()

    def restart(self) -> float:
        """Stop the service (SIGTERM) and start it again on the same ports; returns downtime."""
        assert self.service is not None
        down = time.monotonic()
        self._cpu_done += _cpu(self.service)
        self.service.stop()
        self.service = self._start_service()
        return time.monotonic() - down

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU used so far by the service (all incarnations) and by redis-server."""
        service = self._cpu_done + (_cpu(self.service) if self.service else 0.0)
        return service, _cpu(self.redis.process if self.redis else None)

    def scrape(self) -> dict[str, float]:
        """``/metrics`` as {``name{label="value",...}``: value}; empty if unreachable."""
        try:
            samples = metric_samples(self.http_port)
        except OSError:  # down during a restart
            return {}
        totals: dict[str, float] = {}
        for sample in samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            totals[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return totals


def _events(stack: Stack | ClusterStack, run: Run, start: int) -> float | None:
    """Carry out the shape's restart, kill and rolling restart at their offsets; the downtime
    (or time a rolling restart took)."""
    shape, downtime = run.shape, None
    events = [
        (at, action)
        for at, action in (
            (shape.restart_at_s, stack.restart),
            (shape.kill_at_s, stack.kill_one),
            (shape.rolling_at_s, stack.rolling_restart),
        )
        if at is not None
    ]
    for at, action in sorted(events, key=lambda event: event[0]):
        time.sleep(max(0.0, start / 1e9 + at - time.monotonic_ns() / 1e9))
        took = action()
        downtime = took if took is not None else downtime
    return downtime


def _cpu(proc: ManagedProcess | None) -> float:
    if proc is None or not proc.alive():
        return 0.0
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(proc.pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


def _plans(
    run: Run, arch: Architecture, target: str, config: Path, workdir: Path
) -> list[WorkerPlan]:
    sched = schedule.build(run.shape)
    names = tuple(f"k{i}" for i in range(run.shape.keys.count))
    clients = [
        ClientPlan(f"sim-{arch.name}-{c}", *sched.for_client(c)) for c in range(run.shape.clients)
    ]
    workers = min(MAX_WORKERS, len(clients))
    return [
        WorkerPlan(
            arch, target, config, tuple(clients[w::workers]), names, workdir / f"worker{w}.npz"
        )
        for w in range(workers)
    ]


def _aligned_start(lead_s: float = 0.5) -> int:
    """A monotonic instant that falls on a whole wall-clock second at least ``lead_s`` away."""
    wall, mono = time.time_ns(), time.monotonic_ns()
    target = -(-(wall + int(lead_s * 1e9)) // 1_000_000_000) * 1_000_000_000
    return mono + (target - wall)


def _every(period_s: float, stop: threading.Event, action: Callable[[], None]) -> None:
    while not stop.wait(period_s):
        action()


def play(arch: Architecture, run: Run, workdir: Path) -> Played:
    """Run ``run`` against ``arch`` and collect the records."""
    ctx = mp.get_context("spawn")  # never fork a process that may hold gRPC threads
    stacked = (
        ClusterStack(arch, run, workdir, _policy_yaml(run))
        if arch.servers > 1
        else Stack(arch, run, workdir)
    )
    with stacked as stack:
        plans = _plans(run, arch, stack.target, stack.config, workdir)
        ready, go, start_ns = ctx.Queue(), ctx.Event(), ctx.Value("q", 0)
        procs = [ctx.Process(target=run_worker, args=(p, ready, go, start_ns)) for p in plans]
        for proc in procs:
            proc.start()
        try:
            _await_ready(ready, procs)
            start_ns.value = _aligned_start()
            go.set()
            return _observe(stack, run, procs, plans, start_ns.value, arch)
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                proc.join(5)


def _await_ready(ready: Any, procs: list[Any], timeout_s: float = 120.0) -> None:
    """Wait until every client process has connected its clients; fail fast if one died."""
    deadline, pending = time.monotonic() + timeout_s, len(procs)
    while pending:
        with contextlib.suppress(queue.Empty):
            ready.get(timeout=0.5)
            pending -= 1
            continue
        dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"client processes not ready (exit codes {dead or 'timeout'})")


def _observe(
    stack: Stack | ClusterStack,
    run: Run,
    procs: list[Any],
    plans: list[WorkerPlan],
    start: int,
    arch: Architecture,
) -> Played:
    time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
    cpu0 = stack.cpu_seconds()
    scrapes: list[tuple[float, dict[str, float]]] = []
    stop = threading.Event()

    def sample() -> None:
        scrapes.append(((time.monotonic_ns() - start) / 1e9, stack.scrape()))

    sample()
    sampler = threading.Thread(target=_every, args=(SCRAPE_S, stop, sample), daemon=True)
    sampler.start()
    downtime = _events(stack, run, start)
    deadline = time.monotonic() + run.shape.duration_s + FINISH_GRACE_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    sampler.join()
    sample()
    cpu1 = stack.cpu_seconds()
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError(
            f"{arch.name}: a client process failed (exit codes "
            f"{[p.exitcode for p in procs]}); logs in {stack.workdir}"
        )
    return Played(
        arch=arch.name,
        records=load_records([p.out for p in plans]),
        service_cpu_s=cpu1[0] - cpu0[0],
        redis_cpu_s=cpu1[1] - cpu0[1],
        scrapes=scrapes,
        downtime_s=downtime,
    )
