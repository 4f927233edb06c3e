"""The security sections of :class:`~ratekeeper.server.settings.ServerSettings`: TLS on the
listeners, the shared token, and the separate admin listener.

Paths are empty when unset. Each section checks itself when built and raises
:class:`~ratekeeper.errors.ConfigError` naming ``section.field``; files are read only when the
listeners start (or the token when the process is built), so a bad path fails the start with
the file named.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.errors import ConfigError
from ratekeeper.transport.tls import ListenerTls, TlsSettings, listener_tls

__all__ = ["AdminSettings", "AuthSettings", "ListenerTlsSettings"]


@dataclass(frozen=True, slots=True)
class ListenerTlsSettings:
    """TLS on the gRPC and HTTP listeners (mTLS with a client CA); empty: plaintext."""

    #: PEM certificate and private key of the gRPC listener.
    grpc_cert: str = ""
    grpc_key: str = ""
    #: PEM CA file: gRPC clients must present a certificate it signed (mTLS).
    grpc_client_ca: str = ""
    #: The same for the HTTP listeners (``/json``, health, metrics, the admin port).
    http_cert: str = ""
    http_key: str = ""
    http_client_ca: str = ""
    #: PEM CA file this member's cluster channels (to the assigner, hand-off, forwarding)
    #: verify their peers by; empty: the gRPC client CA (when the gRPC listener has TLS).
    cluster_ca: str = ""
    #: PEM certificate and key those channels present; empty: the gRPC listener's.
    cluster_cert: str = ""
    cluster_key: str = ""

    def __post_init__(self) -> None:
        self.grpc()
        self.http()
        if bool(self.cluster_cert) != bool(self.cluster_key):
            missing = "key" if self.cluster_cert else "cert"
            raise ConfigError(
                "a cluster client certificate needs its key", key=f"tls.cluster_{missing}"
            )

    def grpc(self) -> ListenerTls | None:
        """The gRPC listener's TLS, or ``None``."""
        return listener_tls(self.grpc_cert, self.grpc_key, self.grpc_client_ca, name="tls.grpc")

    def http(self) -> ListenerTls | None:
        """The HTTP listeners' TLS, or ``None``."""
        return listener_tls(self.http_cert, self.http_key, self.http_client_ca, name="tls.http")

    def peer(self) -> TlsSettings | None:
        """How this server opens channels to other members and the assigner (slicelet,
        hand-off, forwarding): TLS trusting :attr:`cluster_ca`, else the gRPC client CA (one CA
        signs every member's and client's certificate in a cluster), presenting
        :attr:`cluster_cert`, else its own gRPC certificate; ``None`` (plaintext) when neither
        a cluster CA nor a gRPC certificate is set."""
        ca = self.cluster_ca or self.grpc_client_ca or None
        if self.cluster_cert:
            return TlsSettings(ca=ca, cert=self.cluster_cert, key=self.cluster_key)
        own = self.grpc()
        if own is not None:
            return own.peer(ca)
        return TlsSettings(ca=ca) if self.cluster_ca else None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The optional shared token required on Report, Watch and the admin endpoints."""

    #: File holding the token; empty: no token required.
    token_file: str = ""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Where ``/metrics`` and ``/rlconfig`` are served instead of the main HTTP port."""

    #: ``HOST:PORT`` of the admin listener (port 0 picks one); empty: on the main HTTP port.
    listen: str = ""

    def __post_init__(self) -> None:
        self.host_port  # noqa: B018 (checks the text)

    @property
    def host_port(self) -> tuple[str, int] | None:
        """``(host, port)`` of the admin listener, or ``None``."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        if not port.isdigit() or not host or int(port) > 65535:
            raise ConfigError(f"expected HOST:PORT, got {self.listen!r}", key="admin.listen")
        return host.strip("[]"), int(port)
