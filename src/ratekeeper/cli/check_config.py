"""``ratekeeper check-config PATH``: load a policy file or directory and print what it holds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ratekeeper.config import LoadBounds, load_config
from ratekeeper.config.lint import limitless_leaves
from ratekeeper.config.loader import read_specs
from ratekeeper.errors import ConfigError

__all__ = ["DESCRIPTION", "HELP", "add_parser", "run"]

#: The line ``ratekeeper --help`` lists it with.
HELP = "validate policy files and print the loaded tree"
#: What ``ratekeeper check-config --help`` says it does.
DESCRIPTION = (
    "Load a policy file, or every *.yaml/*.yml file of a directory, as 'ratekeeper serve' "
    "would, and print the domains and rules it holds (exit 0), or each error with its file, "
    "line and key (exit 1). --strict also refuses rules that limit nothing and have no "
    "children, such as a mis-indented unit:."
)


def add_parser(subparsers: Any) -> None:
    """Register ``check-config`` on the ``ratekeeper`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-config",
        help=HELP,
        description=DESCRIPTION,
    )
    parser.add_argument("path", help="a YAML policy file, or a directory of *.yaml/*.yml files")
    parser.add_argument(
        "--merge-domains",
        action="store_true",
        help="let several files add descriptors to one domain",
    )
    defaults = LoadBounds()
    for name, what in _BOUNDS.items():
        parser.add_argument(
            f"--config-{name.replace('_', '-')}",
            dest=name,
            type=int,
            default=getattr(defaults, name),
            help=f"{what} (as ratekeeper serve's flag of the same name; default %(default)s)",
        )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also refuse rules that limit nothing and have no children (exit 1), such as "
        "a mis-indented unit:/requests_per_unit: leaves; each printed with file, line and key",
    )
    parser.set_defaults(func=run)


#: The loader's bounds, each with the flag ``--config-<name>`` that sets it.
_BOUNDS = {
    "max_bytes": "largest file read, in bytes",
    "max_depth": "deepest nesting of maps and lists",
    "max_nodes": "most values once YAML aliases and merges are expanded",
}


def run(args: argparse.Namespace) -> int:
    """Print the tree and return 0, or print the errors to stderr and return 1."""
    try:
        bounds = LoadBounds(**{name: getattr(args, name) for name in _BOUNDS})
        tree = load_config(args.path, merge_domains=args.merge_domains, bounds=bounds)
        findings = limitless_leaves(read_specs(args.path, bounds)) if args.strict else []
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(tree.describe())
    for finding in findings:
        print(f"error: {finding}", file=sys.stderr)
    return 1 if findings else 0
