"""Electing one leading assigner through a leased key: a passive machine, time passed in, no IO.

The coordination service (etcd) holds one leader key, written only if absent and attached to
the writer's lease, so it disappears when that lease expires or is revoked. Each assigner runs
an :class:`Election`: it obtains a lease, keeps it alive, and campaigns — asks to write the key,
or learns who holds it. The machine never performs IO: :meth:`Election.poll` says what to send
and :meth:`Election.next_deadline` when to ask again; the driver reports each outcome back.

Safety does not rest on clocks agreeing. A lease's life is counted from when its grant or
keep-alive was *sent*, so the local deadline can only fall before the service's; and the machine
stops leading ``safety_s`` before that deadline, leaving room for a slow local clock and for
a write in flight. A deposed leader's late writes are refused by the service anyway: every write
is fenced by the leader key's create revision (:attr:`Leader.revision`), which a new leader's key
never shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ratekeeper.errors import ConfigError

_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ElectionSettings:
    """How long a leadership lasts unrenewed and how often each step runs."""

    #: The lease's time to live: how long a crashed leader blocks a successor, at most.
    ttl_s: int = 5
    #: A leader renews its lease this often.
    keepalive_s: float = 1.0
    #: A follower asks who leads (and tries to lead) this often.
    campaign_s: float = 0.5
    #: A leader stops leading this long before its lease could have expired.
    safety_s: float = 1.0
    #: After a failed call, wait this long before the next.
    retry_s: float = 0.25

    @classmethod
    def for_ttl(cls, ttl_s: int) -> ElectionSettings:
        """Settings scaled to a lease of ``ttl_s`` seconds: renewed four times per ttl, given up
        a fifth of a ttl before it could run out, campaigns every fifth of a second at most (a
        successor leads within the ttl and one campaign; a campaign is one etcd transaction)."""
        return cls(
            ttl_s=ttl_s,
            keepalive_s=ttl_s / 4,
            campaign_s=min(0.2, ttl_s / 10),
            safety_s=ttl_s / 5,
            retry_s=min(0.25, ttl_s / 8),
        )

    def __post_init__(self) -> None:
        if self.ttl_s < 2:
            raise ConfigError(f"election ttl must be at least 2 s, got {self.ttl_s}")
        if not 0 < self.keepalive_s < self.ttl_s - self.safety_s:
            raise ConfigError(
                f"keep-alive interval {self.keepalive_s} s must be positive and shorter than "
                f"the ttl less the safety margin ({self.ttl_s - self.safety_s} s)"
            )
        for name in ("campaign_s", "safety_s", "retry_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"election {name} must be positive")


@dataclass(frozen=True, slots=True)
class Leader:
    """Who holds the leader key: its name, the key's create revision (the fence) and lease."""

    name: str
    revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class Grant:
    """Ask the service for a new lease of ``ttl_s`` seconds."""

    ttl_s: int


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Renew ``lease``."""

    lease: int


@dataclass(frozen=True, slots=True)
class Campaign:
    """Write the leader key under ``lease`` if it is absent; either way, answer its holder."""

    lease: int
    name: str


@dataclass(frozen=True, slots=True)
class Resign:
    """Revoke ``lease``: the leader key goes with it, so a successor need not wait out the ttl."""

    lease: int


Action = Grant | KeepAlive | Campaign | Resign


class Election:
    """One candidate's view of the election. Feed it outcomes; it says what to do next."""

    __slots__ = (
        "_campaign_at",
        "_expires_at",
        "_in_flight",
        "_keepalive_at",
        "_last",
        "_leader",
        "_lease",
        "_name",
        "_resigned",
        "_retry_at",
        "_settings",
    )

    def __init__(self, name: str, settings: ElectionSettings = ElectionSettings()) -> None:
        self._name = name
        self._settings = settings
        self._lease: int | None = None
        self._expires_at = 0  # local deadline of the lease, counted from the send time
        self._leader: Leader | None = None
        self._in_flight: Action | None = None
        self._last: Action | None = None
        self._campaign_at = 0
        self._keepalive_at = 0
        self._retry_at = 0
        self._resigned = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def leader(self) -> Leader | None:
        """The holder of the leader key as last seen (None: unknown or vacant)."""
        return self._leader

    def leading(self, now: int) -> bool:
        """Whether this candidate may act as the leader at ``now``."""
        return (
            self._lease is not None
            and self._leader is not None
            and self._leader.lease == self._lease
            and now < self._stop_leading_at()
        )

    def fence(self, now: int) -> int | None:
        """The revision that fences this leader's writes, while it leads."""
        return self._leader.revision if self._leader and self.leading(now) else None

    def poll(self, now: int) -> Action | None:
        """The next call to make at ``now``, or None (one call is in flight at a time)."""
        if self._in_flight is not None or self._resigned or now < self._retry_at:
            return None
        self._expire(now)
        action: Action | None = None
        renew = now >= self._keepalive_at  # followers renew too: a campaign needs a live lease
        campaign = not self.leading(now) and now >= self._campaign_at
        if self._lease is None:
            action = Grant(self._settings.ttl_s)
        elif campaign and (not renew or isinstance(self._last, KeepAlive)):
            # Taking turns when both are due: a round trip longer than the renewal interval
            # must not starve the campaign.
            action = Campaign(self._lease, self._name)
        elif renew:
            action = KeepAlive(self._lease)
        self._in_flight = action
        if action is not None:
            self._last = action
        return action

    def next_deadline(self, now: int) -> int | None:
        """When :meth:`poll` may next return a call (None: waiting on the one in flight)."""
        if self._in_flight is not None or self._resigned:
            return None
        if now < self._retry_at:
            return self._retry_at
        if self._lease is None:
            return now
        if self.leading(now):
            return min(self._keepalive_at, self._stop_leading_at())
        return min(self._keepalive_at, self._campaign_at, self._expires_at)

    def granted(self, sent_at: int, lease: int, ttl_s: int) -> None:
        """The service granted ``lease``, asked for at ``sent_at``."""
        self._in_flight = None
        self._lease = lease
        self._expires_at = sent_at + ttl_s * _NS
        self._keepalive_at = sent_at + int(self._settings.keepalive_s * _NS)
        self._campaign_at = sent_at  # campaign at once

    def kept_alive(self, sent_at: int, ttl_s: int) -> None:
        """A keep-alive sent at ``sent_at`` came back with ``ttl_s`` left (≤ 0: lease gone)."""
        self._in_flight = None
        if ttl_s <= 0:
            self._lose_lease()
            return
        self._expires_at = max(self._expires_at, sent_at + ttl_s * _NS)
        self._keepalive_at = sent_at + int(self._settings.keepalive_s * _NS)

    def campaigned(self, sent_at: int, holder: Leader | None) -> None:
        """A campaign sent at ``sent_at`` found ``holder`` on the key (this one if it won)."""
        self._in_flight = None
        self._leader = holder
        self._campaign_at = sent_at + int(self._settings.campaign_s * _NS)

    def failed(self, now: int) -> None:
        """The call in flight failed (service unreachable, timed out): retry after a pause."""
        if isinstance(self._in_flight, Resign):
            self._lose_lease()
        self._in_flight = None
        self._retry_at = now + int(self._settings.retry_s * _NS)

    def resign(self) -> Resign | None:
        """Stop for good; the revocation to send, if there is a lease to give up."""
        self._resigned = True
        lease, self._lease = self._lease, None
        self._leader = None
        if lease is None:
            return None
        self._in_flight = Resign(lease)
        return self._in_flight

    def abdicate(self, now: int) -> Resign | None:
        """Give up this lease, and the lead with it, but stand again later with a new one (a
        leader that cannot act, say because it cannot read the stored assignment, makes way)."""
        lease, self._lease = self._lease, None
        self._lose_lease_of(lease)
        # Let another candidate win the vacant key before this one campaigns again.
        self._retry_at = now + int(self._settings.campaign_s * _NS) * 2
        return None if lease is None else Resign(lease)

    def _stop_leading_at(self) -> int:
        return self._expires_at - int(self._settings.safety_s * _NS)

    def _expire(self, now: int) -> None:
        if self._lease is not None and now >= self._expires_at:
            self._lose_lease()

    def _lose_lease(self) -> None:
        self._lose_lease_of(self._lease)
        self._lease = None

    def _lose_lease_of(self, lease: int | None) -> None:
        if self._leader is not None and self._leader.lease == lease:
            self._leader = None
