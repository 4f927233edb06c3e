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

from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.procs import ManagedProcess, ProcessError, free_port, log_line, start
from ratekeeper.testing.server_process import START_TIMEOUT_S, RatekeeperServer, serving
from ratekeeper.transport.channels import open_channel

__all__ = ["Cluster", "assigner_argv", "main", "member_argv"]

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

    Timings are in seconds and go to the assigner; they are short by default so that tests of
    failures run quickly. ``server_flags`` are added to every member's command line, ``env`` to
    every process's environment. With ``embedded``, member 0 runs the assigner itself
    (``serve --assigner-embedded``) and the others join it: there is no assigner process, and
    restarting member 0 restarts the assigner. Not thread-safe: drive it from one thread.
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
        load_interval: float = 5.0,
        server_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT_S,
        embedded: bool = False,
    ) -> None:
        if n < (1 if embedded else 0):
            raise ValueError("a cluster has at least zero members, one when it embeds the assigner")
        self.embedded = embedded
        self.n = n
        self.log_dir = Path(log_dir)
        self.config = config
        self.server_flags = tuple(server_flags)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self._timings = (
            *("--heartbeat-interval", str(heartbeat_interval)),
            *("--unhealthy-after", str(unhealthy_after)),
            *("--min-interval", str(min_interval)),
            *("--load-interval", str(load_interval)),
        )
        self._first_ports = (free_port(), free_port())
        #: The assigner's address (members join it; Status is asked here): member 0's when
        #: the assigner is embedded.
        self.assigner = f"127.0.0.1:{self._first_ports[0] if embedded else free_port()}"
        self.assigner_process: ManagedProcess | None = None
        #: Member ``i``'s current process and ports (a restart replaces the entry).
        self.servers: list[RatekeeperServer] = []
        self._starts = 0
        self._channel = open_channel(self.assigner)
        self._calls = AssignerCalls(self._channel)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Start the assigner and every member; return once all are RUNNING and own slices."""
        try:
            if not self.embedded:
                self.assigner_process = start(
                    assigner_argv(self.assigner, *self._timings),
                    name="assigner",
                    log_dir=self.log_dir,
                    ready=log_line("assigner listening on"),
                    timeout=self.start_timeout,
                    env=self.env,
                )
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
            server.process.stop()
        if self.assigner_process is not None:
            self.assigner_process.stop()
        self._channel.close()

    # --- what tests read --------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """Each member's gRPC address, by index (a killed member keeps its index)."""
        return [server.grpc_target for server in self.servers]

    def live(self) -> list[str]:
        """The addresses of members whose process is running."""
        return [s.grpc_target for s in self.servers if s.process.alive()]

    def status(self, timeout: float = 5.0) -> pb.StatusResponse:
        """The assigner's Status."""
        response: pb.StatusResponse = self._calls.status(pb.StatusRequest(), timeout=timeout)
        return response

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
        old.process.stop()
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

    def _spawn(self, grpc_port: int, http_port: int) -> RatekeeperServer:
        self._starts += 1
        flags: tuple[str, ...] = self.server_flags
        hosts = self.embedded and f"127.0.0.1:{grpc_port}" == self.assigner
        if hosts:
            flags = ("--assigner-embedded", *self._timings, *flags)
        join = "" if hosts else self.assigner
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
