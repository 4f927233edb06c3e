"""``ratekeeper serve`` as a real process: ready line, reload (file change, SIGHUP), shutdown."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.backends.store import Hit
from ratekeeper.core.outcome import Outcome
from ratekeeper.server import stores
from tests.integration.procs import ManagedProcess, log_line, start
from tests.server.conftest import CONFIG, Start, descriptor

pytestmark = pytest.mark.integration

READY = r"ratekeeper ready grpc=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)"
ONE_PER_MINUTE = """
domain: test
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 1}
"""
REQUEST = {"domain": "test", "descriptors": [{"entries": [{"key": "key1", "value": "a"}]}]}
#: /json refuses bodies not declared JSON (urllib would declare a form).
JSON_HEADERS = {"Content-Type": "application/json"}


class Serve:
    """A started ``ratekeeper serve`` and plain HTTP helpers for it."""

    def __init__(self, proc: ManagedProcess) -> None:
        self.proc = proc
        match = re.search(READY, proc.log_text())
        assert match is not None
        self.grpc_port, self.http_port = int(match[1]), int(match[2])

    def get(self, path: str) -> tuple[int, str]:
        return self._call(urllib.request.Request(self._url(path)))

    def post_json(self, body: object) -> int:
        data = json.dumps(body).encode()
        return self._call(
            urllib.request.Request(self._url("/json"), data=data, headers=JSON_HEADERS)
        )[0]

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    @staticmethod
    def _call(request: urllib.request.Request) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def metric(self, name: str) -> float:
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """``launch(*flags, env=...)`` runs ``ratekeeper serve`` on free ports with tmp_path config."""
    procs: list[ManagedProcess] = []

    def run(*flags: str, env: dict[str, str] | None = None) -> Serve:
        argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", *flags]
        ports = {"RATEKEEPER_GRPC_PORT": "0", "RATEKEEPER_PORT": "0"}
        proc = start(
            argv,
            name=f"serve{len(procs)}",
            log_dir=tmp_path / "logs",
            ready=log_line(READY),
            env={**ports, **(env or {})},
        )
        procs.append(proc)
        return Serve(proc)

    yield run
    for proc in procs:
        proc.stop()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "test.yaml").write_text(ONE_PER_MINUTE)
    return directory


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_promptly_with_exit_0(
    launch: Callable[..., Serve], config_dir: Path, sig: signal.Signals
) -> None:
    serve = launch("--config", str(config_dir))
    assert serve.get("/healthcheck") == (200, "OK")
    began = time.monotonic()
    serve.proc.popen.send_signal(sig)
    assert serve.proc.popen.wait(timeout=10) == 0
    assert time.monotonic() - began < 3.0
    assert "stopped" in serve.proc.log_text()


def test_embedded_default_config_when_none_is_given(launch: Callable[..., Serve]) -> None:
    serve = launch()
    status, text = serve.get("/rlconfig")
    assert status == 200
    assert "domain rl" in text


def test_the_process_exports_its_memory_and_gc_pauses(launch: Callable[..., Serve]) -> None:
    serve = launch()
    assert serve.metric("process_resident_memory_bytes") > 10 * 2**20
    # Every generation is exported from the start (its count may still be 0 this soon).
    text = serve.get("/metrics")[1]
    for generation in "012":
        assert f'ratekeeper_gc_pause_seconds_count{{generation="{generation}"}}' in text


def test_reload_keeps_the_old_config_on_a_bad_file_then_takes_a_good_one(
    launch: Callable[..., Serve], config_dir: Path
) -> None:
    serve = launch("--config", str(config_dir), "--reload-interval", "0.1")
    assert [serve.post_json(REQUEST) for _ in range(2)] == [200, 429]
    (config_dir / "test.yaml").write_text(ONE_PER_MINUTE + "    bogus: 1\n")
    wait_for(lambda: serve.metric("ratekeeper_config_load_error_total") == 1)
    assert re.search(r"config load error.*test\.yaml:\d+", serve.proc.log_text())
    assert serve.post_json(REQUEST) == 429  # the old rule still holds
    (config_dir / "test.yaml").write_text(ONE_PER_MINUTE.replace("key1", "key2"))
    wait_for(lambda: serve.metric("ratekeeper_config_load_success_total") == 2)
    assert serve.post_json(REQUEST) == 200  # key1 is no longer limited
    assert serve.get("/healthcheck")[0] == 200


def test_sighup_reloads_when_polling_is_off(launch: Callable[..., Serve], config_dir: Path) -> None:
    serve = launch("--config", str(config_dir), env={"RATEKEEPER_RELOAD_INTERVAL": "0"})
    (config_dir / "test.yaml").write_text(ONE_PER_MINUTE.replace("key1", "key2"))
    time.sleep(0.2)
    assert serve.metric("ratekeeper_config_load_success_total") == 1  # no polling
    serve.proc.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: serve.metric("ratekeeper_config_load_success_total") == 2)
    assert "domain test" in serve.get("/rlconfig")[1]
    assert "key2" in serve.get("/rlconfig")[1]


def test_a_bad_config_at_startup_exits_2_naming_the_file_when_told_not_to_serve_without(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("domain: test\ndescriptors:\n  - key: k\n    nonsense: true\n")
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", "--config", str(bad)]
    argv += ["--serve-without-config", "false"]  # the default serves: tests/server/test_no_config
    proc = start(argv, name="bad", log_dir=tmp_path / "logs")
    assert proc.popen.wait(timeout=20) == 2
    assert re.search(r"cannot start: .*bad\.yaml:4", proc.log_text())


def test_a_unix_socket_path_taken_by_a_file_exits_2_naming_it(tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("not a socket: never deleted to make room")
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", "--grpc-uds", str(taken)]
    env = {"RATEKEEPER_GRPC_PORT": "0", "RATEKEEPER_PORT": "0"}
    proc = start(argv, name="uds", log_dir=tmp_path / "logs", env=env)
    assert proc.popen.wait(timeout=20) == 2
    assert f"cannot listen on 127.0.0.1 or unix:{taken}" in proc.log_text()
    assert taken.read_text().startswith("not a socket")


class SlowStore(MemoryStore):
    """The memory store, answering after a delay: calls stay in flight for a while."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def hit(self, hits: Sequence[Hit], now: int) -> list[Outcome]:
        self.entered.set()
        await asyncio.sleep(0.5)
        return await super().hit(hits, now)


async def test_shutdown_drains_calls_in_flight(
    serve: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SlowStore()
    monkeypatch.setitem(stores.STORES, "slow", lambda url, settings: store)
    running = await serve(CONFIG, backend="slow://")
    in_flight = asyncio.create_task(running.ask("test", descriptor(("key1", "a"))))
    await asyncio.wait_for(store.entered.wait(), timeout=10)  # the call is in the server
    await running.server.stop(grace=5.0)
    response = await in_flight
    assert response.statuses[0].limit_remaining == 1
    assert not running.server.components.health.serving()


def test_settle_gc_freezes_start_up_objects_and_makes_full_collections_rarer() -> None:
    # In a child: the collector's settings are process-wide and would leak into other tests.
    code = (
        "import gc; from ratekeeper.server.app import settle_gc; settle_gc(); "
        "print(gc.get_freeze_count() > 10_000, gc.get_threshold()[2])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "100"]


async def test_grpc_is_also_served_on_a_unix_socket(serve: Start, tmp_path: Path) -> None:
    path = tmp_path / "rls.sock"
    with socket.socket(socket.AF_UNIX) as stale:  # left behind by a process that crashed
        stale.bind(str(path))
    await serve(CONFIG, grpc_uds=str(path))
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        request = rls_pb2.RateLimitRequest(domain="test", descriptors=[descriptor(("key1", "a"))])
        response = await stub.ShouldRateLimit(request, timeout=5)
    assert response.statuses[0].limit_remaining == 1


async def test_connections_are_aged_out_and_clients_reconnect(serve: Start) -> None:
    aged = await serve(CONFIG, grpc_max_connection_age=0.2, grpc_max_connection_age_grace=0.1)
    kept = await serve(CONFIG)  # the default age is a day
    for running in (aged, kept):
        await running.ask("test", descriptor(("key1", "a")))
    ready = grpc.ChannelConnectivity.READY
    deadline = time.monotonic() + 10
    while aged.channel.get_state() is ready:  # the server sent GOAWAY and closed it
        assert time.monotonic() < deadline, "the aged connection was never closed"
        await asyncio.sleep(0.05)
    assert kept.channel.get_state() is ready
    assert (await aged.ask("test", descriptor(("key1", "a")))).statuses[0].limit_remaining == 0
