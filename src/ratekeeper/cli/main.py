"""``ratekeeper`` command line: one subcommand per module in this package.

Each subcommand module exposes ``add_parser(subparsers)`` which registers itself and sets
``func`` (taking the parsed ``argparse.Namespace``, returning an exit code). The table below is
the only place that lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ratekeeper.version import __version__

__all__ = ["main"]

#: What ``ratekeeper --help`` says the program is (the module docstring is for developers).
DESCRIPTION = (
    "ratekeeper: a distributed rate limiter. Serve Envoy's rate limit API and batch reports "
    "from in-process limiters, run the localhost sidecar, check a configuration, benchmark."
)

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "ratekeeper.cli.check_config",
    "ratekeeper.cli.serve",
    "ratekeeper.cli.sidecar",
    "ratekeeper.cli.bench",
    "ratekeeper.cli.assigner",
    "ratekeeper.cli.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ratekeeper", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ratekeeper {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
