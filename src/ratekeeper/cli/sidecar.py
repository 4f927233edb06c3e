"""``ratekeeper sidecar``: a localhost Envoy RLS endpoint deciding locally, reporting in batches.

Answers every ``ShouldRateLimit`` (gRPC on TCP and, with ``--grpc-uds``, a unix socket) and
``POST /json`` from local state, with the server's RLS semantics and config, and reports the
admitted and rejected counts to ``--server`` every ``--report-interval`` seconds. Every flag of
``ratekeeper serve`` that shapes answers applies (the store flags do not); its default ports are
8091 (gRPC) and 8090 (HTTP), beside a server's 8081 and 8080.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from ratekeeper.cli.env_flags import add_env_flag
from ratekeeper.cli.running import add_service_parser, log_to_stderr, refuse
from ratekeeper.errors import ConfigError
from ratekeeper.server.options import OPTIONS, add_arguments, from_sources
from ratekeeper.server.settings import ServerSettings
from ratekeeper.sidecar.app import SidecarOptions, run, servers_of
from ratekeeper.transport.tls import TlsSettings, read_token

__all__ = ["DESCRIPTION", "HELP", "add_parser"]

#: The line ``ratekeeper --help`` lists it with.
HELP = "run a localhost Envoy RLS endpoint that decides locally and reports in batches"
#: What ``ratekeeper sidecar --help`` says it does.
DESCRIPTION = (
    "Answer every ShouldRateLimit (gRPC on TCP and, with --grpc-uds, a unix socket) and POST "
    "/json from local state, with the server's answers and policy files, with no remote call "
    "per request; report what was admitted and rejected to --server every --report-interval "
    "seconds. Every flag of 'ratekeeper serve' that shapes answers applies (the store flags do "
    "not). Default ports: 8091 (gRPC) and 8090 (HTTP), beside a server's 8081 and 8080."
)

#: The sidecar's own default ports, so that it runs beside a server on one host as it is.
DEFAULT_PORTS = {"grpc_port": "8091", "http_port": "8090"}


def add_parser(subparsers: Any) -> None:
    parser = add_service_parser(subparsers, "sidecar", HELP, DESCRIPTION)
    parser.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="A server to report to (repeat, or comma separate, for several: they split the "
        "hash space in order).",
    )
    parser.add_argument(
        "--report-interval", type=float, default=0.1, help="Seconds between reports [0.1]."
    )
    parser.add_argument("--client-id", default=None, help="This sidecar's identity on servers.")
    upstream = parser.add_argument_group("upstream security (the channel to the servers)")
    for flag, what in (
        ("--upstream-tls-ca", "PEM CA file to verify the servers by: report over TLS"),
        ("--upstream-tls-cert", "PEM client certificate for servers requiring mTLS"),
        ("--upstream-tls-key", "PEM private key of --upstream-tls-cert"),
        ("--upstream-auth-token-file", "File holding the servers' shared token"),
    ):
        add_env_flag(upstream, flag, flag[2:].replace("-", "_").upper(), what)
    add_arguments(parser)
    parser.set_defaults(func=_sidecar)


def _sidecar(args: argparse.Namespace) -> int:
    values = vars(args).copy()
    ca, cert, key = (values.pop(f"upstream_tls_{name}") for name in ("ca", "cert", "key"))
    token_file = values.pop("upstream_auth_token_file")
    try:
        tls = TlsSettings(ca=ca, cert=cert, key=key) if ca or cert else None
        token = read_token(token_file) if token_file else None
    except ConfigError as exc:
        return refuse("sidecar", exc)
    options = SidecarOptions(
        servers_of(values.pop("server")),
        report_interval=values.pop("report_interval"),
        client_id=values.pop("client_id"),
        tls=tls,
        auth_token=token,
    )
    values.pop("func", None)
    values.pop("command", None)
    for option in OPTIONS:
        name = option.name
        if name in DEFAULT_PORTS and values.get(name) is None and option.variable not in os.environ:
            values[name] = DEFAULT_PORTS[name]
    try:
        settings: ServerSettings = from_sources(values, os.environ)
    except ConfigError as exc:
        return refuse("sidecar", exc)
    log_to_stderr(settings.log_level)
    return asyncio.run(run(settings, options))
