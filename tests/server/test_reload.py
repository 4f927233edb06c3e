"""The reload poller outlives every failure: hostile files, loader bugs, vanished paths (issue 16
§6). Each attack keeps the old policy, is counted and logged on one line, and polling goes on."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ratekeeper.config import PolicyTree, load_config
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.reload import ConfigWatcher, Policy, PolicyHolder

GOOD = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 5}\n"
OTHER = "domain: e\n"
#: The 292-byte "billion laughs": nine anchors, each aliasing the previous one nine times.
BOMB = "a: &a [lol]\n" + "".join(
    f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
    for prev, name in itertools.pairwise("abcdefghi")
)
DEEP = "domain: d\ndescriptors: " + "[" * 5000 + "]" * 5000 + "\n"
DUPLICATE = GOOD.replace("requests_per_unit: 5}", "requests_per_unit: 5, requests_per_unit: 1000}")

INTERVAL = 0.02


def counted(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(f"ratekeeper_{name}_total")
    return value or 0.0


class Watched:
    """A policy file, a running poller on it, and what it holds."""

    def __init__(self, path: Path, load: Callable[[], Policy]) -> None:
        self.path = path
        self.metrics = Metrics(10)
        self.holder = PolicyHolder(load())
        self.watcher = ConfigWatcher(str(path), load, self.holder, self.metrics, INTERVAL)

    def write(self, text: str) -> None:
        self.path.write_text(text)
        # a fresh mtime even on filesystems with coarse timestamps
        stamp = time.time_ns() + 10**9 * (self.watcher.polls + 1)
        os.utime(self.path, ns=(stamp, stamp))

    @property
    def domains(self) -> tuple[str, ...]:
        return self.holder.policy.domains

    async def until(self, check: Callable[[], bool], within: float = 2.0) -> float:
        """Seconds until ``check()`` holds; fails the test after ``within``."""
        started = time.perf_counter()
        while not check():
            assert time.perf_counter() - started < within, "timed out"
            await asyncio.sleep(INTERVAL / 4)
        return time.perf_counter() - started

    async def alive(self) -> None:
        """The poller still polls, and still takes a good file."""
        polls = self.watcher.polls
        await self.until(lambda: self.watcher.polls >= polls + 3)
        self.write(OTHER)
        await self.until(lambda: self.domains == ("e",))


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    state = Watched(path, lambda: load_config(path))
    task = asyncio.create_task(state.watcher.run())
    yield state
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_alias_bomb_is_refused_within_a_second_and_polling_goes_on(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    watched.write(BOMB)
    elapsed = await watched.until(lambda: watched.watcher.failures == 1)
    assert elapsed < 1.0
    assert watched.domains == ("d",)
    assert counted(watched.metrics, "config_load_error") == 1
    assert "aliases expand" in caplog.text
    await watched.alive()


async def test_deep_nesting_is_one_log_line_and_polling_goes_on(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    watched.write(DEEP)
    await watched.until(lambda: watched.watcher.failures == 1)
    assert watched.domains == ("d",)
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert record.exc_info is None
    assert f"{watched.path}:2: nesting deeper than 64 levels" in record.getMessage()
    await watched.alive()


async def test_a_duplicate_key_is_a_failed_reload_naming_file_line_and_key(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    watched.write(DUPLICATE)
    await watched.until(lambda: watched.watcher.failures == 1)
    assert counted(watched.metrics, "config_load_success") == 0
    assert f"{watched.path}:4: requests_per_unit: duplicate key 'requests_per_unit'" in caplog.text
    tree = watched.holder.policy
    assert isinstance(tree, PolicyTree)
    match = tree.match("d", (("k", "v"),))
    assert match is not None
    assert match.rule.limits[0].amount == 5  # not 1000
    await watched.alive()


@pytest.mark.parametrize("error", [RuntimeError("loader bug"), MemoryError(), RecursionError()])
async def test_any_exception_from_the_loader_is_survived(
    tmp_path: Path, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    raising = [False]

    def load() -> Policy:
        if raising[0]:
            raise error
        return load_config(path)

    state = Watched(path, load)
    task = asyncio.create_task(state.watcher.run())
    try:
        raising[0] = True
        state.write(OTHER)
        await state.until(lambda: state.watcher.failures == 1)
        assert state.domains == ("d",)
        assert type(error).__name__ in caplog.text
        raising[0] = False
        await state.alive()
    finally:
        task.cancel()


async def test_a_vanished_path_is_survived(watched: Watched) -> None:
    watched.path.unlink()
    await watched.until(lambda: watched.watcher.failures >= 1)
    assert watched.domains == ("d",)
    await watched.alive()


async def test_a_signal_reload_of_a_bad_file_is_survived(watched: Watched) -> None:
    watched.path.write_text(BOMB)
    assert await watched.watcher.reload() is False
    assert watched.domains == ("d",)
    await watched.alive()
