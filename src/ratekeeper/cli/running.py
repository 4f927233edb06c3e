"""What every long-running subcommand (``serve``, ``sidecar``, ``assigner``) does alike: its
parser's epilog, how it refuses a bad configuration, how it logs, when it stops."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from ratekeeper.errors import ConfigError

__all__ = ["add_service_parser", "log_to_stderr", "refuse", "stop_on_signals"]

#: One format for every process, so the logs of a cluster's processes read alike.
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_service_parser(
    subparsers: Any, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """The parser of ``ratekeeper <name>`` (listed by ``ratekeeper --help`` with ``summary``),
    a subcommand whose flags have ``RATEKEEPER_*`` variables."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog="Flags override RATEKEEPER_* environment variables, which override defaults.",
    )
    return parser


def refuse(command: str, exc: ConfigError) -> int:
    """Say on stderr why ``ratekeeper <command>`` cannot run; returns its exit code, 2 (a
    configuration that cannot be used: a bad flag, variable or file)."""
    print(f"ratekeeper {command}: {exc}", file=sys.stderr)
    return 2


def log_to_stderr(level: str) -> None:
    """Log at ``level`` (a name: ``INFO``) to stderr, where a supervisor collects it."""
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; call it on the running event loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
