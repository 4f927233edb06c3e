"""A real etcd for the assigner tests that need one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.testing.etcd_server import EtcdServer


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of this test's own on free ports, stopped when the test ends."""
    server = EtcdServer(tmp_path)
    yield server
    server.stop()
