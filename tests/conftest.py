"""Fixtures shared by every test package: thin wrappers over :mod:`ratekeeper.testing`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ratekeeper.testing.procs import ToolMissing
from ratekeeper.testing.redis_server import RedisServer
from ratekeeper.testing.replicas import Replicas


def _skip_when_tool_missing() -> Generator[None, None, None]:
    """A helper that finds its program missing (redis-server, envoy) skips the test: the
    program is a system dependency (``make sysdeps``), not something the test got wrong."""
    try:
        return (yield)
    except ToolMissing as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Fixtures (the shared ``redis_server``) start programs during set-up."""
    return (yield from _skip_when_tool_missing())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Tests that break a program on purpose start their own."""
    return (yield from _skip_when_tool_missing())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the whole session; keep tests apart with key prefixes."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


StartReplicas = Callable[..., Awaitable[Replicas]]


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[StartReplicas]:
    """``await replicas(n, policy_yaml, **options)``: n in-process replicas on free ports.

    ``options`` go to :class:`~ratekeeper.testing.replicas.Replicas` (``clock``, ``settings``);
    every set started is stopped when the test ends.
    """
    started: list[Replicas] = []

    async def start(count: int, policy: str, **options: Any) -> Replicas:
        config = tmp_path / f"replicas{len(started)}"
        config.mkdir()
        (config / "policy.yaml").write_text(policy)
        fleet = Replicas(count, config, **options)
        started.append(fleet)
        await fleet.start_all()
        return fleet

    yield start
    for fleet in started:
        await fleet.stop_all()
