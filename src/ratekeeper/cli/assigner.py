"""``ratekeeper assigner``: run the cluster's assigner (membership, the assignment, Watch).

Servers join with ``ratekeeper serve --join HOST:PORT`` and heartbeat to it; clients and members
watch the assignment through any member or here. Its state is soft: after a restart it is rebuilt
from the members' heartbeats, under a new incarnation that outranks every earlier assignment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from ratekeeper.assigner.options import add_arguments, from_sources
from ratekeeper.assigner.server import running_assigner
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.errors import ConfigError

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "assigner",
        help=__doc__.splitlines()[0].split(": ", 1)[1],
        description=__doc__,
        epilog="Flags override RATEKEEPER_* environment variables, which override defaults.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RATEKEEPER_LOG_LEVEL", "INFO"),
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="Logging level [env RATEKEEPER_LOG_LEVEL, default 'INFO'].",
    )
    parser.set_defaults(func=_assigner)


def _assigner(args: argparse.Namespace) -> int:
    try:
        settings = from_sources(vars(args), os.environ)
    except ConfigError as exc:
        print(f"ratekeeper assigner: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(_run(settings))
    except OSError as exc:
        print(f"ratekeeper assigner: {exc}", file=sys.stderr)
        return 1


async def _run(settings: AssignerSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_assigner(settings):
        await stop.wait()
    return 0
