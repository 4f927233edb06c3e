"""``ratekeeper check-config PATH``: load a policy file or directory and print what it holds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ratekeeper.config import load_config
from ratekeeper.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``check-config`` on the ``ratekeeper`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-config",
        help="validate policy files and print the loaded tree",
        description=__doc__,
    )
    parser.add_argument("path", help="a YAML policy file, or a directory of *.yaml/*.yml files")
    parser.add_argument(
        "--merge-domains",
        action="store_true",
        help="let several files add descriptors to one domain",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tree and return 0, or print the error to stderr and return 1."""
    try:
        tree = load_config(args.path, merge_domains=args.merge_domains)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(tree.describe())
    return 0
