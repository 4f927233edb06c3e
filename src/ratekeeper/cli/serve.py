"""``ratekeeper serve``: run the rate limit service (Envoy RLS, /json, health, metrics)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from ratekeeper.errors import ConfigError
from ratekeeper.server.app import run
from ratekeeper.server.options import add_arguments, from_sources
from ratekeeper.server.settings import ServerSettings

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help=__doc__.splitlines()[0].split(": ", 1)[1],
        description=__doc__,
        epilog="Flags override RATEKEEPER_* environment variables, which override defaults.",
    )
    add_arguments(parser)
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings: ServerSettings = from_sources(vars(args), os.environ)
    except ConfigError as exc:
        print(f"ratekeeper serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(run(settings))
