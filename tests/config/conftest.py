"""Shared fixtures for the configuration tests: our own YAML files under ``data/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratekeeper.config import PolicyTree, load_config

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def valid_tree() -> PolicyTree:
    """Every file of ``data/valid`` loaded as one tree."""
    return load_config(DATA / "valid")
