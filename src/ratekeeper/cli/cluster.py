"""``ratekeeper cluster``: run a loopback cluster (``up``) or show one's state (``status``).

``up -n N`` starts an assigner and N ``ratekeeper serve --join`` processes on free loopback
ports, prints their addresses and stops them all on Ctrl-C or SIGTERM: for demos, tests and the
simulator. ``status HOST:PORT`` asks the assigner or any member for the members, their states,
slices and load, the generation and the imbalance (over TLS with ``--tls-ca``, presenting
``--tls-cert`` to an mTLS listener, with the token of ``--auth-token-file``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import grpc

from ratekeeper.cli.env_flags import add_env_flag
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.errors import ConfigError
from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.transport.channels import describe_error, open_channel
from ratekeeper.transport.tls import TlsSettings, read_token

__all__ = ["add_parser", "format_status"]

#: The module ``up`` runs in its place (``cli`` does not import the testing helpers; like
#: ``ratekeeper bench``, it hands over to a child that does).
_RUNNER = "ratekeeper.testing.cluster"

#: ``status``'s security flags: flag, variable (the members' own), help.
_STATUS_SECURITY: tuple[tuple[str, str, str], ...] = (
    ("--tls-ca", "CLUSTER_TLS_CA", "PEM CA file to verify the assigner or member by: ask over TLS"),
    ("--tls-cert", "CLUSTER_TLS_CERT", "PEM client certificate, for a listener requiring mTLS"),
    ("--tls-key", "CLUSTER_TLS_KEY", "PEM private key of --tls-cert"),
    ("--auth-token-file", "AUTH_TOKEN_FILE", "File holding the cluster's shared token"),
)  # fmt: skip


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cluster", help=__doc__.splitlines()[0].split(": ", 1)[1], description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="Run an assigner and N members on loopback until Ctrl-C.")
    up.add_argument("-n", type=int, default=3, help="Members to start [3].")
    up.add_argument("--config", default=None, help="Policy file or directory for every member.")
    up.add_argument("--log-dir", default=None, help="Where process logs go [a new temp dir].")
    up.add_argument(
        "--embedded",
        action="store_true",
        help="No assigner process: the first member runs it (serve --assigner-embedded).",
    )
    up.add_argument("--heartbeat-interval", type=float, default=1.0, help="Seconds [1.0].")
    up.add_argument("--unhealthy-after", type=float, default=3.0, help="Seconds [3.0].")
    up.add_argument("--min-interval", type=float, default=10.0, help="Seconds [10.0].")
    up.add_argument("--load-interval", type=float, default=60.0, help="Seconds [60.0].")
    up.set_defaults(func=_up)
    status = actions.add_parser("status", help="Members, slices, load and the generation.")
    status.add_argument("address", metavar="HOST:PORT", help="The assigner or any member.")
    status.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait [5].")
    for flag, variable, text in _STATUS_SECURITY:
        add_env_flag(status, flag, variable, text)
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    if args.n < 1:
        print("ratekeeper cluster up: -n must be at least 1", file=sys.stderr)
        return 2
    spec = {
        "n": args.n,
        "config": os.path.abspath(args.config) if args.config else None,
        "log_dir": args.log_dir,
        "heartbeat_interval": args.heartbeat_interval,
        "unhealthy_after": args.unhealthy_after,
        "min_interval": args.min_interval,
        "load_interval": args.load_interval,
        "embedded": args.embedded,
    }
    sys.stdout.flush()
    # the child takes this process's place, so Ctrl-C and SIGTERM reach it as they would us
    os.execv(sys.executable, [sys.executable, "-m", _RUNNER, json.dumps(spec)])
    return 1  # not reached: execv does not return


def _status(args: argparse.Namespace) -> int:
    try:
        tls = None
        if args.tls_ca or args.tls_cert or args.tls_key:
            tls = TlsSettings(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
        token = read_token(args.auth_token_file) if args.auth_token_file else None
        channel = open_channel(args.address, tls=tls, token=token)
    except (ValueError, ConfigError) as exc:
        print(f"ratekeeper cluster status: {exc}", file=sys.stderr)
        return 2
    with channel:
        try:
            response = AssignerCalls(channel).status(pb.StatusRequest(), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"ratekeeper cluster status: {describe_error(exc)}", file=sys.stderr)
            return 1
    print(format_status(response))
    return 0


def format_status(status: pb.StatusResponse) -> str:
    """``status`` as the lines ``cluster status`` prints."""
    gen = status.assignment.generation
    owned = status.HasField("assignment")
    lines = [
        f"assigner    {status.assigner or '-'}",
        f"generation  {gen.incarnation}.{gen.number}" if owned else "generation  none yet",
        f"slices      {len(status.assignment.starts)}",
        f"imbalance   {status.imbalance:.3f}" if status.imbalance else "imbalance   no load yet",
        "",
        f"{'MEMBER':<24} {'STATE':<12} {'SLICES':>6} {'LOAD/S':>10} {'HEARTBEAT':>10}",
    ]
    for m in status.members:
        age = f"{m.heartbeat_age_ns / NS_PER_SECOND:.1f}s ago"
        state = pb.MemberState.Name(m.state)
        lines.append(f"{m.address:<24} {state:<12} {m.slices:>6} {m.load:>10.1f} {age:>10}")
    if not status.members:
        lines.append("(no members)")
    return "\n".join(lines)
