"""The policy's reload when files change or on SIGHUP.

The policy is swapped whole into its :class:`~ratekeeper.protocol.policy.PolicyHolder`. A load
that fails keeps the old policy, counts ``config_load_error`` and logs the error, whose message
names the file, line and key. The poller outlives every failure, expected or not (a file removed
mid-poll, a loader bug, memory running out on a hostile file): each is logged on one line,
counted in :attr:`ConfigWatcher.failures` and ``config_load_error``, and polling goes on with
the old policy.

At start-up (:func:`initial_policy`) a config that is invalid or absent does not stop the server
by default, as envoyproxy/ratelimit's does not: it serves with :class:`NoConfig` (no rule, every
descriptor OK), says so on ``/healthcheck`` and in the log, and the watcher loads the files as
soon as they change (or on SIGHUP). ``--serve-without-config false`` makes it fatal instead.

Thread safety: event loop only. Parsing runs in a worker thread (``asyncio.to_thread``) so a
large config does not stall requests; the swap happens back on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from ratekeeper.config.model import Match
from ratekeeper.core.keys import Entries
from ratekeeper.errors import ConfigError
from ratekeeper.protocol.policy import Policy, PolicyHolder
from ratekeeper.protocol.stats import Event, StatsSink

__all__ = [
    "ConfigWatcher",
    "NoConfig",
    "Signature",
    "config_gauge",
    "file_signature",
    "initial_policy",
]

log = logging.getLogger(__name__)

#: ``(path, mtime_ns, size)`` of each file: what a reload is triggered by.
Signature = tuple[tuple[str, int, int], ...]


class NoConfig:
    """The policy in force while no config has loaded: no domain, no rule, so every descriptor
    is answered OK (counted as a domain no config defines)."""

    def __init__(self, path: str, reason: str) -> None:
        #: The config path that did not load.
        self.path = path
        #: Why, as logged (``file:line: key: reason`` for an invalid file).
        self.reason = reason

    @property
    def domains(self) -> tuple[str, ...]:
        """None: nothing is loaded."""
        return ()

    def match(self, domain: str, entries: Entries) -> Match | None:
        """No rule for anything."""
        return None

    def describe(self) -> str:
        """What ``/rlconfig`` shows."""
        return f"no config loaded from {self.path}: {self.reason}\n"


def initial_policy(
    load: Callable[[], Policy], path: str, stats: StatsSink, serve_without_config: bool
) -> Policy:
    """The policy to start with: ``load()``'s (``config_load_success`` counted). If it fails
    (a :class:`ConfigError`: invalid, or absent) and ``serve_without_config``, a
    :class:`NoConfig` (``config_load_error`` counted, the error logged); otherwise it raises."""
    try:
        policy = load()
    except ConfigError as exc:
        if not serve_without_config:
            raise
        stats.count(Event.CONFIG_LOAD_ERROR)
        log.error(
            "no config loaded, serving with no rules (every descriptor OK) until %s loads: %s",
            path, exc,
        )  # fmt: skip
        return NoConfig(path, str(exc))
    stats.count(Event.CONFIG_LOAD_SUCCESS)
    return policy


def config_gauge(registry: CollectorRegistry, holder: PolicyHolder) -> None:
    """``ratekeeper_config_loaded``: 1 while a config is in force, 0 while serving without."""
    gauge = Gauge(
        "ratekeeper_config_loaded",
        "1 while a config is in force; 0 while serving with none (invalid or absent at start).",
        registry=registry,
    )
    gauge.set_function(lambda: 0.0 if isinstance(holder.policy, NoConfig) else 1.0)


def file_signature(path: str) -> Signature:
    """``(path, mtime_ns, size)`` of every file under ``path`` (or of ``path`` itself)."""
    if os.path.isfile(path):
        st = os.stat(path)
        return ((path, st.st_mtime_ns, st.st_size),)
    found: list[tuple[str, int, int]] = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:  # removed between listing and stat: the next poll sees it gone
                continue
            found.append((full, st.st_mtime_ns, st.st_size))
    found.sort()
    return tuple(found)


class ConfigWatcher:
    """Reloads ``holder`` from ``load`` when the files under ``path`` change, or when told."""

    def __init__(
        self,
        path: str,
        load: Callable[[], Policy],
        holder: PolicyHolder,
        stats: StatsSink,
        interval: float,
        signature: Signature | None = None,
    ) -> None:
        """``signature``: the files as they were when the current policy was read (default: now)."""
        self._path = path
        self._load = load
        self._holder = holder
        self._stats = stats
        self._interval = interval
        self._lock = asyncio.Lock()
        self._signature = file_signature(path) if signature is None else signature
        self._pending: set[asyncio.Task[bool]] = set()
        #: Loads and polls that failed, for any reason (a test and health hook).
        self.failures = 0
        #: Polls done (each looks at the files once): shows the poller is alive.
        self.polls = 0

    async def run(self) -> None:
        """Poll the files' mtimes every ``interval`` seconds until cancelled; never dies of an
        error (see the module docstring)."""
        while True:
            await asyncio.sleep(self._interval)
            self.polls += 1
            try:
                if file_signature(self._path) != self._signature:
                    await self.reload()
            except Exception as exc:  # the poller must outlive anything (reload catches most)
                self._failed(f"config poll failed, {self._keeping()}", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        self._stats.count(Event.CONFIG_LOAD_ERROR)
        # One line: a traceback of a deep or hostile file can run to thousands of lines.
        log.error("%s: %s", what, _one_line(exc))

    def _keeping(self) -> str:
        """What stays in force after a failed load, for the log line."""
        if isinstance(self._holder.policy, NoConfig):
            return "still serving with no config loaded"
        return "keeping the previous config"

    def reload_soon(self) -> None:
        """Schedule :meth:`reload` (for a signal handler, which cannot await)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._pending.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(self._pending.discard)

    async def reload(self) -> bool:
        """Load now; swap on success, keep the old policy (or none) on error. Returns success."""
        async with self._lock:
            try:
                signature = file_signature(self._path)
            except Exception as exc:  # the path vanished, or cannot be listed
                self._failed(f"config reload failed, {self._keeping()}", exc)
                return False
            try:
                policy = await asyncio.to_thread(self._load)
            except Exception as exc:  # a ConfigError, or anything a loader bug raises
                self._signature = signature  # do not retry a broken file on every poll
                self._failed(f"config load error, {self._keeping()}", exc)
                return False
            self._signature = signature
            first = isinstance(self._holder.policy, NoConfig)
            self._holder.policy = policy
            self._stats.count(Event.CONFIG_LOAD_SUCCESS)
            if first:
                log.info("config loaded from %s: serving its rules from now on", self._path)
            else:
                log.info("config reloaded from %s", self._path)
            return True


def _one_line(exc: BaseException) -> str:
    """``exc`` as one short line: a ConfigError's own message, else its type and message."""
    if isinstance(exc, ConfigError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__
