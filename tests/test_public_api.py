"""``ratekeeper.__all__`` is the public API: it must list exactly what the package exposes."""

from __future__ import annotations
import __future__

import types

import ratekeeper


def _public_attributes() -> set[str]:
    """Non-underscore attributes of the package, less submodules and ``__future__`` flags."""
    return {
        name
        for name, value in vars(ratekeeper).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations
    }


def test_every_exported_name_exists() -> None:
    missing = [name for name in ratekeeper.__all__ if not hasattr(ratekeeper, name)]
    assert missing == []


def test_every_public_attribute_is_exported() -> None:
    assert _public_attributes() - set(ratekeeper.__all__) == set()


def test_all_has_no_duplicates_and_only_public_names() -> None:
    assert len(ratekeeper.__all__) == len(set(ratekeeper.__all__))
    assert not [name for name in ratekeeper.__all__ if name.startswith("_")]


def test_version_is_a_string() -> None:
    assert isinstance(ratekeeper.__version__, str)
    assert ratekeeper.__version__
