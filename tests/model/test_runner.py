"""run_sync: a coroutine that never suspends is run to its result; one that does is an error."""

from __future__ import annotations

import asyncio

import pytest

from ratekeeper.testing.model.runner import run_sync


async def _value() -> int:
    return 7


async def _suspends() -> None:
    await asyncio.sleep(0)


def test_a_coroutine_that_never_suspends_gives_its_result() -> None:
    assert run_sync(_value()) == 7


def test_a_coroutine_that_suspends_is_refused() -> None:
    with pytest.raises(RuntimeError, match="suspended"):
        run_sync(_suspends())
