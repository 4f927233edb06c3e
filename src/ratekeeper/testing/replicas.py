"""N server replicas in this process, each with real gRPC and HTTP listeners on free ports.

The in-process counterpart of starting N ``ratekeeper serve`` processes (as gubernator's
``cluster`` package does for its functional tests): every replica is the real composition root
(:func:`ratekeeper.server.app.build`) with its own store, policy and metrics, all reading one
clock the test may drive by hand. Start-up takes milliseconds, a replica can be stopped and
started again on its own ports to test failure modes, and a debugger sees every node at once.

Two ways to host them:

* :class:`Replicas`, an async context manager, on the caller's event loop (async tests, asyncio
  clients)::

      async with Replicas(3, config_dir, clock=clock) as fleet:
          targets = fleet.targets            # ("127.0.0.1:port", ...)

* :class:`ThreadedReplicas`, a plain context manager that runs them on a private event loop in a
  daemon thread, for blocking callers (the sync ``Limiter``, WSGI apps, a simulator's workers)::

      with ThreadedReplicas(Replicas(2, config_dir)) as fleet:
          ...
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ratekeeper.server.app import Replica, build
from ratekeeper.server.settings import ServerSettings

__all__ = ["Node", "Replicas", "ThreadedReplicas"]

T = TypeVar("T")

#: Seconds in-flight calls get to finish when a replica stops: tests want it gone at once.
STOP_GRACE_S = 0.0
#: Seconds a blocking caller waits for the private loop to start or stop the replicas.
THREAD_TIMEOUT_S = 30.0


def replica_settings(
    base: ServerSettings, config: Path, grpc_port: int, http_port: int
) -> ServerSettings:
    """``base`` bound to loopback ``grpc_port`` and ``http_port`` (0: a free one), ``config``.

    The one place that knows the settings' field names, so a change of their shape is one edit.
    """
    listeners = dataclasses.replace(
        base.listeners, host="127.0.0.1", grpc_port=grpc_port, http_port=http_port
    )
    policy = dataclasses.replace(base.policy, path=str(config))
    return dataclasses.replace(base, listeners=listeners, policy=policy)


@dataclass(slots=True)
class Node:
    """One replica of a :class:`Replicas` set."""

    #: Its position in the set, from 0.
    index: int
    #: The running server (``None`` while stopped).
    server: Replica | None
    #: Its gRPC port; kept across a stop so a restart binds the same one.
    grpc_port: int = 0
    #: Its HTTP port (/healthcheck, /metrics, /json), kept likewise.
    http_port: int = 0

    @property
    def target(self) -> str:
        """``host:port`` of its gRPC listener, as clients and channels take it."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        """``http://host:port`` of its HTTP listener."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.server is not None


class Replicas:
    """``count`` replicas sharing ``config`` (a policy file or directory) and one ``clock``.

    ``settings`` is the template every replica starts from (defaults otherwise); its ports and
    config are replaced. Each replica opens the store its ``backend`` names: with the default
    ``memory://`` each holds its own counters, with a Redis URL they share them.
    """

    def __init__(
        self,
        count: int,
        config: Path,
        *,
        clock: Callable[[], int] = time.time_ns,
        settings: ServerSettings | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"a replica set needs at least one replica, got {count}")
        self._config = config
        self._clock = clock
        self._base = settings if settings is not None else ServerSettings()
        #: The replicas, in order.
        self.nodes: tuple[Node, ...] = tuple(Node(i, None) for i in range(count))

    @property
    def targets(self) -> tuple[str, ...]:
        """Every replica's gRPC ``host:port``, in order (stopped ones included)."""
        return tuple(node.target for node in self.nodes)

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    def __len__(self) -> int:
        return len(self.nodes)

    async def start(self, index: int) -> Node:
        """Start replica ``index`` (on its previous ports if it ran before); no-op if running."""
        node = self.nodes[index]
        if node.server is None:
            settings = replica_settings(self._base, self._config, node.grpc_port, node.http_port)
            server = Replica(build(settings, self._clock))
            try:
                await server.start()
            except BaseException:
                await server.stop(STOP_GRACE_S)
                raise
            node.server, node.grpc_port, node.http_port = server, server.grpc_port, server.http_port
        return node

    async def stop(self, index: int) -> None:
        """Stop replica ``index`` (NOT_SERVING, listeners and store closed); no-op if stopped."""
        node = self.nodes[index]
        server, node.server = node.server, None
        if server is not None:
            await server.stop(STOP_GRACE_S)

    async def start_all(self) -> None:
        for node in self.nodes:
            await self.start(node.index)

    async def stop_all(self) -> None:
        for node in self.nodes:
            await self.stop(node.index)

    async def __aenter__(self) -> Replicas:
        try:
            await self.start_all()
        except BaseException:
            await self.stop_all()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()


class ThreadedReplicas:
    """Hosts a :class:`Replicas` set on a private event loop in a daemon thread, started at once.

    Its methods block until the loop has done the work; use it as a context manager (leaving
    the block stops every replica and the loop) or call :meth:`close`.
    """

    def __init__(self, replicas: Replicas) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ratekeeper-replicas", daemon=True
        )
        self._thread.start()
        #: The replica set, owned by the private loop: read it, drive it through this object.
        self.replicas = replicas
        try:
            self.run(replicas.start_all())
        except BaseException:
            self.close()
            raise

    @property
    def nodes(self) -> Sequence[Node]:
        return self.replicas.nodes

    @property
    def targets(self) -> tuple[str, ...]:
        return self.replicas.targets

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the replicas' loop and return its result (raising its error)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=THREAD_TIMEOUT_S)

    def start(self, index: int) -> Node:
        return self.run(self.replicas.start(index))

    def stop(self, index: int) -> None:
        self.run(self.replicas.stop(index))

    def close(self) -> None:
        """Stop every replica, then the loop and its thread; safe to call twice."""
        if self._loop.is_closed():
            return
        try:
            self.run(self.replicas.stop_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=THREAD_TIMEOUT_S)
            self._loop.close()

    def __enter__(self) -> ThreadedReplicas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
