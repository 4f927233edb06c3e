"""Run real processes for tests and benchmarks: start, wait until ready, capture logs, stop.

A :class:`ManagedProcess` writes stdout and stderr to one log file (never a pipe: a pipe nobody
reads fills up and blocks the child), and is always stopped with SIGTERM, then SIGKILL after a
grace period. Readiness is a plain predicate polled until a deadline, so callers combine what
they need: a port accepting connections, an HTTP 200, a line in the log.

Usage (leaving the block stops the process, whatever happened in it)::

    with start(["ratekeeper", "serve", ...], name="rk", log_dir=tmp, ready=http_ok(port)) as proc:
        ...  # proc.pid, proc.log_text()

The module imports only the standard library, so bench scripts, simulators and subprocesses
that must start fast can use it.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "ProcessError",
    "ReadyCheck",
    "ToolMissing",
    "free_port",
    "http_get",
    "http_ok",
    "installed",
    "log_line",
    "port_open",
    "start",
]

#: A readiness predicate: true once the process serves what the caller needs.
ReadyCheck = Callable[["ManagedProcess"], bool]

#: How often readiness is polled; short, because tests wait on it for every process they start.
_POLL_S = 0.05
#: How much of the log a failure message quotes.
_LOG_TAIL_CHARS = 4000


class ProcessError(RuntimeError):
    """A managed process exited early or did not become ready in time; carries its log tail."""


class ToolMissing(FileNotFoundError):
    """A program a helper needs (redis-server, envoy) is not installed.

    Test suites turn it into a skip (``tests/conftest.py``); a benchmark lets it end the run
    with its message, which says how to install the program.
    """


#: Ports this process has handed out: the kernel may offer a just-closed port again, and two
#: servers told the same port would fail to start.
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now and not handed out before by this process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class ManagedProcess:
    """One child process with its log file; stop it with :meth:`stop` (idempotent), or use it
    as a context manager, which stops it on exit."""

    def __init__(self, name: str, argv: Sequence[str], popen: subprocess.Popen[bytes], log: Path):
        #: A short label used in error messages.
        self.name = name
        #: The command line, for error messages.
        self.argv = tuple(argv)
        #: The OS process.
        self.popen = popen
        #: Where stdout and stderr go.
        self.log_path = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """The command, exit status and the end of the log: what a failure message needs."""
        status = "running" if self.alive() else f"exit code {self.popen.returncode}"
        tail = self.log_text()[-_LOG_TAIL_CHARS:]
        return f"{self.name} ({' '.join(self.argv)}), {status}; log {self.log_path}:\n{tail}"

    def wait_ready(self, ready: ReadyCheck, timeout: float) -> None:
        """Poll ``ready`` until it holds; raise :class:`ProcessError` on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ProcessError(f"exited before it was ready: {self.describe()}")
            if ready(self):
                return
            if time.monotonic() > deadline:
                raise ProcessError(f"not ready after {timeout:.1f}s: {self.describe()}")
            time.sleep(_POLL_S)

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code.

        Signals go to the child's process group (it leads its own session, see :func:`start`),
        so helpers it forked stop with it. They are sent only while the child is unreaped,
        when its pid, and so the group id, cannot have been reused by another process.
        """
        if self.alive():
            self._signal_group(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.wait()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        """Freeze the child's group (SIGSTOP): sockets stay open, nothing answers, as in a hang."""
        if self.alive():
            self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a frozen child (SIGCONT); a no-op otherwise."""
        if self.alive():
            self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the child's group at once and reap the child."""
        if self.popen.returncode is None:
            self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # Not our group after all (should not happen): fall back to the child alone.
            self.popen.send_signal(sig)


def start(
    argv: Sequence[str],
    *,
    name: str,
    log_dir: Path,
    ready: ReadyCheck | None = None,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` with its output in ``log_dir/<name>.log``; wait for ``ready`` if given.

    ``env`` is added to the current environment. If readiness fails the process is stopped
    before the error propagates, so a caller never leaks a half-started child.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        # A new session keeps terminal signals (Ctrl-C in pytest) from reaching the child
        # directly: teardown stops it in order instead.
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    proc = ManagedProcess(name, argv, popen, log)
    if ready is not None:
        try:
            proc.wait_ready(ready, timeout)
        except BaseException:
            proc.stop()
            raise
    return proc


def port_open(port: int, host: str = "127.0.0.1") -> ReadyCheck:
    """Ready once a TCP connection to ``host:port`` succeeds."""

    def check(_proc: ManagedProcess) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None, host: str = "127.0.0.1"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """``GET http://host:port/path``: status, headers and body (error statuses are answers too;
    a refused connection raises ``OSError``)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def http_ok(port: int, path: str = "/", host: str = "127.0.0.1") -> ReadyCheck:
    """Ready once ``GET http://host:port/path`` answers 200."""

    def check(_proc: ManagedProcess) -> bool:
        conn = http.client.HTTPConnection(host, port, timeout=1.0)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    return check


def log_line(pattern: str) -> ReadyCheck:
    """Ready once a line of the process's log matches the regular expression ``pattern``."""
    regex = re.compile(pattern, re.MULTILINE)

    def check(proc: ManagedProcess) -> bool:
        return regex.search(proc.log_text()) is not None

    return check


def installed(program: str, hint: str) -> str:
    """The path of ``program`` on PATH; raises :class:`ToolMissing` saying ``hint`` (how to
    install it) when it is not there."""
    found = shutil.which(program)
    if found is None:
        raise ToolMissing(f"{program} is not installed ({hint})")
    return found


class Restartable:
    """A helper-run service (redis-server, etcd) that tests stop, freeze and start again on the
    same port and data: subclasses say how it is started (:meth:`_argv`).

    Built, it starts at once (subclasses set what :meth:`_argv` reads before calling
    ``__init__``); raises ``ProcessError`` if it does not start.
    """

    _process: ManagedProcess | None = None
    #: Seconds it gets to accept connections.
    start_timeout: float = 10.0

    def __init__(self, binary: str, workdir: Path, name: str) -> None:
        self._binary = binary
        self._workdir = workdir
        self._name = name
        #: The port it serves on, the same across restarts.
        self.port = free_port()
        self.start()

    def _argv(self) -> list[str]:
        """The command line that serves on :attr:`port`."""
        raise NotImplementedError

    def start(self) -> None:
        """Start (again) on :attr:`port`; waits until it accepts connections."""
        self._process = start(
            self._argv(),
            name=self._name,
            log_dir=self._workdir,
            ready=port_open(self.port),
            timeout=self.start_timeout,
        )

    @property
    def process(self) -> ManagedProcess | None:
        """The running process (its pid, its log); ``None`` while stopped."""
        return self._process

    def stop(self) -> None:
        """Stop it (thawed first if frozen); idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open and nothing answers, as in a hang."""
        assert self._process is not None
        self._process.pause()

    def resume(self) -> None:
        """Thaw it (SIGCONT); a no-op unless frozen."""
        if self._process is not None:
            self._process.resume()
