"""The assigner's settings: one typed section for the process, one in nanoseconds for the machine.

:class:`AssignerSettings` is what an operator sets (``ratekeeper assigner`` flags and their
``RATEKEEPER_*`` twins, or a server embedding the assigner); :meth:`AssignerSettings.machine`
turns it into the :class:`MachineSettings` the pure machine reads. Each field says what its
value trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.rebalance_settings import RebalanceSettings
from ratekeeper.transport.tls import ListenerTls, TlsSettings, listener_tls

__all__ = ["AssignerSettings", "MachineSettings"]


@dataclass(frozen=True, slots=True)
class MachineSettings:
    """What the assigner's machine needs, in integer nanoseconds."""

    #: How often members are told to heartbeat.
    heartbeat_interval_ns: int = NS_PER_SECOND
    #: After this long without a heartbeat a member is taken for dead and its slices move.
    unhealthy_after_ns: int = 3 * NS_PER_SECOND
    #: After a start with no assignment, how long to collect heartbeats before the first one, so
    #: a restarted assigner does not give everything to whichever member heartbeats first.
    settle_ns: int = NS_PER_SECOND
    #: A join is assigned this long after it was seen, with every join seen meanwhile.
    join_batch_ns: int = NS_PER_SECOND
    #: The rebalancing knobs, with the floor between load rounds and their period.
    rebalance: RebalanceSettings = field(default_factory=RebalanceSettings)
    #: Recent assignments kept so a Watch can answer with a diff.
    history: int = 32
    #: Members accepted at most (a heartbeat from one more is refused).
    max_members: int = 1024

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ns <= 0:
            raise ValueError("heartbeat_interval must be positive")
        if self.unhealthy_after_ns <= self.heartbeat_interval_ns:
            raise ValueError("unhealthy_after must be longer than heartbeat_interval")
        if self.settle_ns < 0 or self.join_batch_ns < 0:
            raise ValueError("settle and join_batch must not be negative")
        if self.history < 1 or self.max_members < 1:
            raise ValueError("history and max_members must be at least 1")


@dataclass(frozen=True, slots=True)
class AssignerSettings:
    """The assigner process: where it listens and its timeouts, in seconds."""

    #: The ``host:port`` it serves AssignerService on (port 0 picks a free one).
    listen: str = "127.0.0.1:8070"
    #: How often members heartbeat. Shorter: deaths noticed sooner, more heartbeat traffic.
    heartbeat_interval_s: float = 1.0
    #: A member silent this long is dead and loses its slices. Shorter: a crashed member's keys
    #: are served again sooner; too short: a GC pause or a slow network moves slices needlessly
    #: (each move is a hand-off). Must exceed the heartbeat interval, ideally by 3x.
    unhealthy_after_s: float = 3.0
    #: Load rounds are at least this far apart. Membership changes never wait for it.
    min_interval_s: float = 10.0
    #: With no membership change, a round for load runs this often. Shorter: follows load shifts
    #: sooner, at the price of more moves (each capped by the rebalancer's churn budget).
    load_interval_s: float = 60.0
    #: Collect heartbeats this long after start before the first assignment; ``None``: one
    #: heartbeat interval.
    settle_s: float | None = None
    #: A join is assigned this long after it was seen, with every join seen meanwhile;
    #: ``None``: one heartbeat interval. Longer: fewer hand-off waves when many members start
    #: together; a new member waits longer for its first slices.
    join_batch_s: float | None = None
    #: Recent assignments kept for diffs.
    history: int = 32
    #: Members accepted at most.
    max_members: int = 1024
    #: Watch calls held open at once at most; beyond, a Watch is refused RESOURCE_EXHAUSTED.
    max_watchers: int = 10_000
    #: The longest a Watch is held, whatever it asks for.
    max_wait_s: float = 60.0
    #: PEM certificate and key of the listener: serve over TLS only; empty: plaintext.
    grpc_tls_cert: str = ""
    grpc_tls_key: str = ""
    #: PEM CA file: members and clients must present a certificate it signed (mTLS). Elected
    #: assigners trust it, and present their own certificate, when passing calls to the leader.
    grpc_tls_client_ca: str = ""
    #: File holding the shared token every call must carry (the members' ``--auth-token-file``);
    #: empty: none required.
    auth_token_file: str = ""

    def __post_init__(self) -> None:
        if self.max_watchers < 1:
            raise ValueError("max_watchers must be at least 1")
        if self.max_wait_s <= 0:
            raise ValueError("max_wait must be positive")
        self.tls()
        self.machine()  # every timing check lives there, once

    def tls(self) -> ListenerTls | None:
        """The listener's TLS, or ``None``; :class:`~ratekeeper.errors.ConfigError` (keyed by the
        field) for a certificate without its key or a client CA without a certificate."""
        cert, key, ca = self.grpc_tls_cert, self.grpc_tls_key, self.grpc_tls_client_ca
        return listener_tls(cert, key, ca, name="grpc_tls")

    def peer_tls(self) -> TlsSettings | None:
        """How this assigner reaches another (an elected follower, its leader): TLS trusting the
        client CA, presenting its own certificate; ``None`` when it serves plaintext."""
        tls = self.tls()
        return None if tls is None else tls.peer()

    def machine(self) -> MachineSettings:
        """The machine's view of these settings; :class:`ValueError` if they do not fit."""
        settle = self.heartbeat_interval_s if self.settle_s is None else self.settle_s
        batch = self.heartbeat_interval_s if self.join_batch_s is None else self.join_batch_s
        return MachineSettings(
            heartbeat_interval_ns=_ns(self.heartbeat_interval_s),
            unhealthy_after_ns=_ns(self.unhealthy_after_s),
            settle_ns=_ns(settle),
            join_batch_ns=_ns(batch),
            rebalance=RebalanceSettings(
                min_interval_ns=_ns(self.min_interval_s),
                load_interval_ns=_ns(self.load_interval_s),
            ),
            history=self.history,
            max_members=self.max_members,
        )


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)
