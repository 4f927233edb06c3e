"""Loading policy files from disk: one YAML file, or a directory of them, into one tree.

Loading is all or nothing: every file is read and checked before the tree is built, and any
error raises :class:`~ratekeeper.errors.ConfigError`, so a caller reloading keeps its old tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from ratekeeper.config.bounded_yaml import DEFAULT_BOUNDS, LoadBounds
from ratekeeper.config.document import from_yaml
from ratekeeper.config.schema import DomainSpec, read_domain
from ratekeeper.config.tree import PolicyTree
from ratekeeper.core.limits import Algorithm
from ratekeeper.errors import ConfigError

__all__ = ["LoadBounds", "config_files", "default_config_path", "load_config", "read_specs"]

_SUFFIXES = (".yaml", ".yml")


def load_config(
    path: str | os.PathLike[str],
    *,
    merge_domains: bool = False,
    algorithm: Algorithm | None = None,
    bounds: LoadBounds = DEFAULT_BOUNDS,
) -> PolicyTree:
    """Load a policy file, or every ``*.yaml``/``*.yml`` file of a directory in name order.

    ``merge_domains`` lets several files add descriptors to one domain (the reference's
    ``MERGE_DOMAIN_CONFIG``); ``algorithm`` forces every limit onto one algorithm; ``bounds``
    caps what each file may hold (size, nesting, alias expansion).
    """
    tree = PolicyTree.from_specs(read_specs(path, bounds), merge_domains=merge_domains)
    return tree if algorithm is None else tree.with_algorithm(algorithm)


def read_specs(
    path: str | os.PathLike[str], bounds: LoadBounds = DEFAULT_BOUNDS
) -> list[DomainSpec]:
    """Each file of ``path`` (as :func:`load_config` reads them) checked on its own, not yet
    built into a tree."""
    return [_read(file, bounds) for file in config_files(path)]


def config_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files :func:`load_config` reads for ``path`` (dotfiles and subdirectories skipped)."""
    root = Path(path)
    if root.is_dir():
        return sorted(
            child
            for child in root.iterdir()
            if child.suffix in _SUFFIXES and not child.name.startswith(".") and child.is_file()
        )
    if root.is_file():
        return [root]
    raise ConfigError("no such file or directory", file=str(root))


def _read(file: Path, bounds: LoadBounds) -> DomainSpec:
    name = str(file)
    try:
        with file.open("rb") as stream:
            data = stream.read(bounds.max_bytes + 1)  # never more, whatever the file's size
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file: {err}", file=name) from None
    if len(data) > bounds.max_bytes:
        reason = f"file is larger than the bound of {bounds.max_bytes} bytes (max_bytes)"
        raise ConfigError(reason, file=name)
    return read_domain(from_yaml(text, file=name, bounds=bounds), name)


def default_config_path() -> Path:
    """The directory of the policy files shipped inside the package (what ``make run`` serves)."""
    return Path(__file__).parent / "defaults"
