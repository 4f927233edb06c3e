"""A real-process cluster on loopback: ``ratekeeper assigner`` and N ``ratekeeper serve --join``.

Every cluster test, the simulator and ``ratekeeper cluster up`` start clusters this way::

    with Cluster(3, log_dir=tmp_path, config=policy) as cluster:
        cluster.addresses          # each member's gRPC host:port, its name in assignments
        cluster.kill(0)            # kill -9 member 0 ...
        cluster.wait_covered(cluster.addresses[1:])   # ... its slices are on the others
        cluster.restart(0)         # same ports, waits until it owns slices again

Readiness is what the assigner says: :meth:`Cluster.wait_covered` polls its Status until the
assignment's owners are exactly the given members, each RUNNING. Processes are stopped with
SIGTERM (then SIGKILL) in reverse order of start, whatever happened in the block.

``python -m ratekeeper.testing.cluster SPEC`` (``SPEC`` a JSON object of :class:`Cluster`
keyword arguments) runs one until SIGINT or SIGTERM, printing the addresses: that is
``ratekeeper cluster up``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import grpc

from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.procs import (
    ManagedProcess,
    ProcessError,
    free_port,
    log_line,
    start,
)
from ratekeeper.testing.server_process import (
    START_TIMEOUT_S,
    RatekeeperServer,
    metric_samples,
    serving,
)
from ratekeeper.transport.channels import open_channel
from ratekeeper.transport.tls import TlsSettings

__all__ = ["STOP_GRACE_S", "Cluster", "assigner_argv", "main", "member_argv"]

#: A member's drain (slices moved, counters handed off) is bounded by its drain timeout, 10 s
#: by default: it gets that and some to exit before SIGKILL.
STOP_GRACE_S = 15.0
#: How often Status is polled while waiting.
_POLL_S = 0.05


def assigner_argv(listen: str, *flags: str) -> list[str]:
    """The command line of ``ratekeeper assigner --listen listen [flags]``."""
    return [sys.executable, "-m", "ratekeeper.cli.main", "assigner", "--listen", listen, *flags]


def member_argv(
    join: str, grpc_port: int, http_port: int, config: Path | None, *flags: str
) -> list[str]:
    """The command line of ``ratekeeper serve --join join`` on these ports (no ``join``: not
    joining, as the member that embeds the assigner; no ``config``: the default policy)."""
    return [
        *(sys.executable, "-m", "ratekeeper.cli.main", "serve"),
        *(("--join", join) if join else ()),
        *("--grpc-port", str(grpc_port), "--http-port", str(http_port)),
        *(("--config", str(config)) if config is not None else ()),
        *flags,
    ]


class Cluster:
    """An assigner and ``n`` members as real processes (see the module docstring).

    Timings are in seconds and go to the assigner. Heartbeats and the timeout are short by
    default, so that tests of failures run quickly; rounds for load alone are as rare as in
    production (a test of rebalancing by load passes a short ``load_interval``), so ownership
    changes only when membership does. ``server_flags`` are added to every member's command
    line, ``env`` to every process's environment. With ``embedded``, member 0 runs the
    assigner itself (``serve --assigner-embedded``) and the others join it: there is no
    assigner process, and restarting member 0 restarts the assigner. With ``etcd``, there are
    ``assigners`` elected assigners and members join them all. Status is asked over TLS with
    ``status_tls`` and with ``status_token`` (for processes started with TLS or a token, say
    through ``env``). Not thread-safe: drive it from one thread.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        log_dir: Path,
        config: Path | None = None,
        heartbeat_interval: float = 0.2,
        unhealthy_after: float = 1.0,
        min_interval: float = 1.0,
        load_interval: float = 60.0,
        server_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT_S,
        embedded: bool = False,
        stop_grace: float = STOP_GRACE_S,
        join_batch: float | None = None,
        etcd: str | None = None,
        assigners: int = 1,
        election_ttl: int = 2,
        advertise: Callable[[int], str] | None = None,
        status_tls: TlsSettings | None = None,
        status_token: str | None = None,
    ) -> None:
        several = assigners != 1
        if assigners < 1 or (several and (etcd is None or embedded)):
            raise ValueError("several assigners need etcd (and no embedded assigner)")
        if etcd is not None and embedded:
            raise ValueError("an embedded assigner does not take part in an election")
        if n < (1 if embedded else 0):
            raise ValueError("a cluster has at least zero members, one when it embeds the assigner")
        self.embedded = embedded
        self.n = n
        self.log_dir = Path(log_dir)
        self.config = config
        self.server_flags = tuple(server_flags)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        #: Seconds a member gets to drain and exit after SIGTERM before it is killed.
        self.stop_grace = stop_grace
        self._unhealthy_after = unhealthy_after
        self._timings = (
            *("--heartbeat-interval", str(heartbeat_interval)),
            *("--unhealthy-after", str(unhealthy_after)),
            *("--min-interval", str(min_interval)),
            *("--load-interval", str(load_interval)),
        )
        #: The standalone assigner's own knobs (an embedding server has none of them).
        self._batch = () if join_batch is None else ("--join-batch", str(join_batch))
        self._first_ports = (free_port(), free_port())
        #: The assigner's address (members join it; Status is asked here): member 0's when
        #: the assigner is embedded.
        self.assigner = f"127.0.0.1:{self._first_ports[0] if embedded else free_port()}"
        #: Every assigner's address (one without etcd); members are given them all to join.
        self.assigners = [
            self.assigner,
            *(f"127.0.0.1:{free_port()}" for _ in range(assigners - 1)),
        ]
        #: Each assigner's process, by index (none when embedded; a restart replaces the entry).
        self.assigner_processes: list[ManagedProcess] = []
        #: What each member advertises, by gRPC port (default: its listen address). The
        #: simulator gives each the address of a latency relay in front of it.
        self._advertise = advertise
        self._ha = () if etcd is None else ("--etcd", etcd, "--election-ttl", str(election_ttl))
        #: Member ``i``'s current process and ports (a restart replaces the entry).
        self.servers: list[RatekeeperServer] = []
        self._starts = 0
        #: How Status is asked: TLS and the token, as the processes require.
        self._security = (status_tls, status_token)
        self._channel = self._open(self.assigner)
        self._calls = AssignerCalls(self._channel)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Start the assigner and every member; return once all are RUNNING and own slices."""
        try:
            if not self.embedded:
                for i in range(len(self.assigners)):
                    self.assigner_processes.append(self._spawn_assigner(i))
            for i in range(self.n):
                ports = self._first_ports if i == 0 else (free_port(), free_port())
                self.servers.append(self._spawn(*ports))
            for server in self.servers:
                server.process.wait_ready(serving(server.http_port), self.start_timeout)
            self.wait_covered()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every member, then the assigner (SIGTERM, then SIGKILL); idempotent."""
        for server in reversed(self.servers):
            server.process.stop(self.stop_grace)
        for process in reversed(self.assigner_processes):
            process.stop()
        self._channel.close()

    # --- what tests read --------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """Each member's gRPC address, by index (a killed member keeps its index)."""
        return [self._name(server) for server in self.servers]

    def live(self) -> list[str]:
        """The addresses of members whose process is running."""
        return [self._name(s) for s in self.servers if s.process.alive()]

    def _name(self, server: RatekeeperServer) -> str:
        """A member's name in assignments: what it advertises."""
        return self._advertise(server.grpc_port) if self._advertise else server.grpc_target

    def status(self, timeout: float = 5.0) -> pb.StatusResponse:
        """The assigner's Status (with several, the first that answers: a follower passes the
        call on to the leader)."""
        if not self._ha:
            response: pb.StatusResponse = self._calls.status(pb.StatusRequest(), timeout=timeout)
            return response
        error: Exception | None = None
        for address in self.assigners:
            channel = self._open(address)
            try:
                answer: pb.StatusResponse = AssignerCalls(channel).status(
                    pb.StatusRequest(), timeout=timeout
                )
                return answer
            except Exception as exc:  # that one is down or has no leader to ask
                error = exc
            finally:
                channel.close()
        assert error is not None
        raise error

    @property
    def assigner_process(self) -> ManagedProcess | None:
        """The (first) assigner's process; ``None`` when member 0 embeds the assigner."""
        return self.assigner_processes[0] if self.assigner_processes else None

    def kill_assigner(self, i: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to assigner ``i``'s process group (SIGKILL also reaps it)."""
        process = self.assigner_processes[i]
        if process.alive():
            os.killpg(process.pid, sig)
        if sig is signal.SIGKILL:
            process.popen.wait()

    def restart_assigner(self, i: int) -> ManagedProcess:
        """Stop assigner ``i`` if it runs and start it again on the same address (its state is
        soft: it rebuilds from the members' heartbeats; :meth:`wait_covered` waits for that)."""
        self.assigner_processes[i].stop()
        self.assigner_processes[i] = self._spawn_assigner(i)
        return self.assigner_processes[i]

    def _spawn_assigner(self, i: int) -> ManagedProcess:
        self._starts += 1
        return start(
            assigner_argv(self.assigners[i], *self._timings, *self._batch, *self._ha),
            name=f"assigner-{i}-{self._starts}",
            log_dir=self.log_dir,
            ready=log_line("campaigning" if self._ha else "assigner listening on"),
            timeout=self.start_timeout,
            env=self.env,
        )

    def wait_until(
        self, check: Callable[[pb.StatusResponse], bool], what: str, timeout: float = 30.0
    ) -> pb.StatusResponse:
        """Poll Status until ``check`` holds; :class:`TimeoutError` naming ``what`` if not."""
        deadline = time.monotonic() + timeout
        last: pb.StatusResponse | None = None
        while True:
            try:
                last = self.status()
                if check(last):
                    return last
            except Exception as exc:  # the assigner may be restarting; keep asking
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what}: Status failed: {exc}") from exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not within {timeout:.1f}s; last status:\n{last}")
            time.sleep(_POLL_S)

    def wait_covered(
        self, addresses: Collection[str] | None = None, timeout: float | None = None
    ) -> pb.StatusResponse:
        """Wait until the assignment's owners are exactly ``addresses`` (default: every live
        member), each RUNNING."""
        wanted = set(self.live() if addresses is None else addresses)

        def covered(status: pb.StatusResponse) -> bool:
            running = {m.address for m in status.members if m.state == pb.RUNNING}
            return wanted <= running and set(status.assignment.servers) == wanted

        return self.wait_until(
            covered, f"assignment owned by {sorted(wanted)}", timeout or self.start_timeout
        )

    def wait_held(self, status: pb.StatusResponse, timeout: float | None = None) -> None:
        """Wait until every live member holds the assignment of ``status`` (or a later one).

        The assigner's Status says what it decided; each member learns it from its next
        heartbeat answer. Until then a member applies reports by the assignment it holds, so a
        test that asserts what a new owner does must wait for this too."""
        wanted = status.assignment.generation
        want = (wanted.incarnation, wanted.number)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        for server in self.servers:
            while server.process.alive():
                held = _held_generation(server.http_port)
                if held is not None and held[0] == want[0] and held[1] >= want[1]:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self._name(server)} holds {held}, not {want}")
                time.sleep(_POLL_S)

    # --- what tests do ----------------------------------------------------------------------

    def kill(self, i: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to member ``i`` (its process group); SIGKILL also reaps it."""
        process = self.servers[i].process
        if process.alive():
            os.killpg(process.pid, sig)
        if sig is signal.SIGKILL:
            process.popen.wait()

    def wait_exit(self, i: int, timeout: float = 30.0) -> int:
        """Member ``i``'s exit code once it has exited (after a SIGTERM drain, say)."""
        return self.servers[i].process.popen.wait(timeout=timeout)

    def restart(self, i: int, *, wait: bool = True) -> RatekeeperServer:
        """Stop member ``i`` if it runs and start it again on the same ports (same address);
        with ``wait``, return once it is RUNNING and owns slices."""
        old = self.servers[i]
        old.process.stop(self.stop_grace)
        self.servers[i] = self._spawn(old.grpc_port, old.http_port)
        if wait:
            self._await_member(self.servers[i])
        return self.servers[i]

    def add_server(self, *, wait: bool = True) -> int:
        """Start one more member; its index. With ``wait``, return once it owns slices."""
        self.servers.append(self._spawn(free_port(), free_port()))
        if wait:
            self._await_member(self.servers[-1])
        return len(self.servers) - 1

    def _await_member(self, server: RatekeeperServer) -> None:
        server.process.wait_ready(serving(server.http_port), self.start_timeout)
        self.wait_covered()

    def _open(self, address: str) -> grpc.Channel:
        tls, token = self._security
        return open_channel(address, tls=tls, token=token)

    def _spawn(self, grpc_port: int, http_port: int) -> RatekeeperServer:
        self._starts += 1
        # a member backing off from an unreachable assigner (one restarting, say) must still
        # heartbeat within the timeout, or the assigner counts it dead when it is back
        retry = ("--join-retry-max", f"{min(2.0, self._unhealthy_after / 3):g}")
        flags: tuple[str, ...] = (*retry, *self.server_flags)
        hosts = self.embedded and f"127.0.0.1:{grpc_port}" == self.assigner
        if hosts:
            flags = ("--assigner-embedded", *self._timings, *flags)
        if self._advertise is not None:
            flags = (*flags, "--advertise", self._advertise(grpc_port))
        join = "" if hosts else ",".join(self.assigners)
        argv = member_argv(join, grpc_port, http_port, self.config, *flags)
        name = f"member-{grpc_port}-{self._starts}"
        process = start(argv, name=name, log_dir=self.log_dir, env=self.env)
        return RatekeeperServer(process, grpc_port, http_port)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a :class:`Cluster` from a JSON spec until SIGINT or SIGTERM (``cluster up``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    spec = json.loads(args[0]) if args else {}
    log_dir = spec.pop("log_dir", None) or tempfile.mkdtemp(prefix="ratekeeper-cluster-")
    if spec.get("config") is not None:
        spec["config"] = Path(spec["config"])
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        cluster = Cluster(log_dir=Path(log_dir), **spec).start()
    except (ProcessError, TimeoutError) as exc:
        print(f"ratekeeper cluster up: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"assigner {cluster.assigner}")
        for server in cluster.servers:
            print(f"member {server.grpc_target} http 127.0.0.1:{server.http_port}")
        print(f"logs {log_dir}", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        cluster.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _held_generation(http_port: int) -> tuple[int, int] | None:
    """The generation a member's ``/metrics`` says it holds; ``None`` before the first (or
    while its HTTP port does not answer)."""
    try:
        samples = metric_samples(http_port)
    except OSError:
        return None
    for sample in samples:
        if sample.name == "ratekeeper_assignment_generation":
            return int(sample.labels["incarnation"]), int(sample.value)
    return None
