"""``ratekeeper assigner``: run the cluster's assigner (membership, the assignment, Watch).

Servers join with ``ratekeeper serve --join HOST:PORT`` and heartbeat to it; clients and members
watch the assignment through any member or here. With ``--grpc-tls-cert`` it serves TLS only
(mTLS with ``--grpc-tls-client-ca``), and with ``--auth-token-file`` every call must carry the
members' shared token. Its state is soft: after a restart it is rebuilt
from the members' heartbeats, under a new incarnation that outranks every earlier assignment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ratekeeper.assigner.options import add_arguments, from_sources
from ratekeeper.assigner.server import running_assigner
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.cli.env_flags import add_env_flag
from ratekeeper.cli.running import add_service_parser, log_to_stderr, refuse, stop_on_signals
from ratekeeper.errors import ConfigError

__all__ = ["add_parser"]


#: The flags of the elected mode: flag, variable (without ``RATEKEEPER_``), default, type, help.
_HA_FLAGS: tuple[tuple[str, str, str, type, str], ...] = (
    ("--etcd", "ETCD", "", str, "etcd client URLs, http://HOST:PORT[,...]: elect a leader among "
     "the assigners started on it and store each assignment there (none: run alone)"),
    ("--etcd-prefix", "ETCD_PREFIX", "/ratekeeper", str, "Key prefix of this cluster in etcd"),
    ("--election-ttl", "ELECTION_TTL", "5", int, "Seconds a crashed leader holds the lead at "
     "most (the etcd lease ttl, at least 2)"),
    ("--advertise", "ASSIGNER_ADVERTISE", "", str, "host:port the other assigners and members "
     "reach this one at (none: the listen address)"),
)  # fmt: skip


def add_parser(subparsers: Any) -> None:
    summary = __doc__.splitlines()[0].split(": ", 1)[1]
    parser = add_service_parser(subparsers, "assigner", summary, __doc__)
    add_arguments(parser)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RATEKEEPER_LOG_LEVEL", "INFO").upper(),
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="Logging level [env RATEKEEPER_LOG_LEVEL, default 'INFO'].",
    )
    ha = parser.add_argument_group(
        "high availability", "Several assigners on one etcd: one leads, the others stand by."
    )
    for flag, variable, default, parse, text in _HA_FLAGS:
        add_env_flag(ha, flag, variable, text, default=default, parse=parse)
    parser.set_defaults(func=_assigner)


def _assigner(args: argparse.Namespace) -> int:
    try:
        settings = from_sources(vars(args), os.environ)
    except ConfigError as exc:
        return refuse("assigner", exc)
    log_to_stderr(args.log_level)
    try:
        if args.etcd:
            return asyncio.run(_run_elected(settings, args))
        return asyncio.run(_run(settings))
    except OSError as exc:
        print(f"ratekeeper assigner: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # an unreadable certificate, key or token file
        return refuse("assigner", exc)


async def _run(settings: AssignerSettings) -> int:
    stop = stop_on_signals()
    async with running_assigner(settings):
        await stop.wait()
    return 0


async def _run_elected(settings: AssignerSettings, args: argparse.Namespace) -> int:
    # Imported here: the etcd client is an extra (pip install "ratekeeper[etcd]").
    from ratekeeper.assigner.election import ElectionSettings
    from ratekeeper.assigner.etcd_coordination import EtcdCoordination, parse_endpoints
    from ratekeeper.assigner.ha import running_ha_assigner

    try:
        coordination = EtcdCoordination(parse_endpoints(args.etcd), prefix=args.etcd_prefix)
        election = ElectionSettings.for_ttl(args.election_ttl)
    except ConfigError as exc:
        return refuse("assigner", exc)
    stop = stop_on_signals()
    advertise = args.advertise or None
    async with running_ha_assigner(settings, coordination, election, advertise=advertise):
        await stop.wait()
    return 0
