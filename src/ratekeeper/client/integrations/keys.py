"""Key helpers: the client's address behind trusted proxies, a header, the authenticated user.

Pure functions over what a framework's request carries (its :class:`Access`); each framework
module binds them to its request type (``ratekeeper.client.integrations.flask.keys`` and so on).

Behind proxies the peer's address is the last proxy's. :func:`client_ip` walks the chain a
proxy appends to (``Forwarded`` (RFC 7239) ``for=`` when present, else ``X-Forwarded-For``)
from the right, and returns the right-most address not in the trusted set: the first hop no
proxy of yours vouches for. A client cannot spoof it by sending its own header: its entries
lie left of the one your proxy appended. Malformed headers never raise; an entry that is no
address (``unknown``, an obfuscated ``_hidden``, garbage) is returned as written, stripped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Access", "KeyHelpers", "Trusted", "client_ip", "forwarded_chain", "trusted"]

#: The framework's request type a set of helpers is bound to.
Request = TypeVar("Request")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Trusted = tuple[Network, ...]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def trusted(proxies: Iterable[str]) -> Trusted:
    """The networks of ``proxies`` (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``)."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)


def _address(text: str) -> Address | None:
    """``text`` as an address, ports and IPv6 brackets removed; ``None`` if it is none."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def forwarded_chain(forwarded: str | None, forwarded_for: str | None) -> list[str]:
    """The hops the proxies recorded, left (the origin) to right, from either header."""
    if forwarded:
        hops = []
        for element in _split_outside_quotes(forwarded, ","):
            for pair in _split_outside_quotes(element, ";"):
                name, eq, value = pair.partition("=")
                if eq and name.strip().lower() == "for":
                    hops.append(value.strip().strip('"').replace('\\"', '"').strip())
        if hops:
            return hops
    if forwarded_for:
        return [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    return []


def _is_trusted(address: Address | None, networks: Trusted) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def client_ip(
    peer: str | None, forwarded: str | None, forwarded_for: str | None, networks: Trusted
) -> str | None:
    """The client's address: ``peer`` unless it is a trusted proxy (see the module doc)."""
    if not peer or not _is_trusted(_address(peer), networks):
        return peer or None
    chain = forwarded_chain(forwarded, forwarded_for)
    for hop in reversed(chain):
        address = _address(hop)
        if not _is_trusted(address, networks):
            return str(address) if address is not None else (hop[:256] or None)
    return str(_address(chain[0])) if chain else peer  # every hop is trusted: the origin


@dataclass(frozen=True, slots=True)
class Access(Generic[Request]):
    """How to read a framework's request: its peer, a header, its authenticated user."""

    peer: Callable[[Request], str | None]
    header: Callable[[Request, str], str | None]
    user: Callable[[Request], str | None]


@dataclass(frozen=True, slots=True)
class KeyHelpers(Generic[Request]):
    """Key functions (the request to the key; ``None``: unlimited) for one framework."""

    access: Access[Request]

    def client_address(
        self, trusted_proxies: Iterable[str] = ()
    ) -> Callable[[Request], str | None]:
        """The client's address, honouring ``X-Forwarded-For``/``Forwarded`` from these proxies."""
        networks, a = trusted(trusted_proxies), self.access

        def key(request: Request) -> str | None:
            peer = a.peer(request)
            if not networks:
                return peer or None
            return client_ip(
                peer, a.header(request, "Forwarded"), a.header(request, "X-Forwarded-For"), networks
            )

        return key

    def header(self, name: str) -> Callable[[Request], str | None]:
        """The value of the header ``name`` (absent or empty: unlimited)."""
        return lambda request: self.access.header(request, name) or None

    def user(self) -> Callable[[Request], str | None]:
        """The authenticated user's identifier (anonymous: unlimited)."""
        return self.access.user

    def route(
        self, name: str, by: Callable[[Request], str | None]
    ) -> Callable[[Request], tuple[tuple[str, str], ...] | None]:
        """The key ``(("route", name), ("client", by(request)))``: a limit per route and client."""

        def key(request: Request) -> tuple[tuple[str, str], ...] | None:
            who = by(request)
            return None if who is None else (("route", name), ("client", who))

        return key
