"""The election machine, driven against a model of a leased-key service in simulated time.

The model is the contract the etcd adapter is tested to keep (tests/assigner/
test_etcd_coordination.py): leases expire ``ttl`` after their last grant or renewal *arrived*,
the leader key is written only if vacant and disappears with its lease. Requests and replies
take random delays, candidates freeze (as under SIGSTOP) and crash, the service goes away for a
while. Whatever happens: never two candidates leading at once, and a leader always holds the key.
Once things calm down, someone leads within the ttl and a campaign interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.assigner.election import (
    Action,
    Campaign,
    Election,
    ElectionSettings,
    Grant,
    KeepAlive,
    Leader,
    Resign,
)

MS = 1_000_000
S = 1_000 * MS
TICK = 10 * MS
SETTINGS = ElectionSettings(ttl_s=3, keepalive_s=0.5, campaign_s=0.25, safety_s=0.5, retry_s=0.1)


@dataclass
class Service:
    """The leased key-value service, as etcd behaves for the calls the election makes."""

    leases: dict[int, int] = field(default_factory=dict)  # lease → expiry time
    holder: Leader | None = None
    revision: int = 0
    next_lease: int = 1
    down: list[tuple[int, int]] = field(default_factory=list)

    def available(self, now: int) -> bool:
        return not any(start <= now < end for start, end in self.down)

    def expire(self, now: int) -> None:
        for lease in [lease for lease, end in self.leases.items() if end <= now]:
            del self.leases[lease]
        if self.holder is not None and self.holder.lease not in self.leases:
            self.holder = None

    def handle(self, action: Action, now: int) -> object:
        self.expire(now)
        if isinstance(action, Grant):
            lease, self.next_lease = self.next_lease, self.next_lease + 1
            self.leases[lease] = now + action.ttl_s * S
            return lease
        if isinstance(action, KeepAlive):
            if action.lease not in self.leases:
                return 0
            self.leases[action.lease] = now + SETTINGS.ttl_s * S
            return SETTINGS.ttl_s
        if isinstance(action, Campaign):
            if action.lease not in self.leases:
                return None  # etcd refuses a put under a dead lease: the call fails
            if self.holder is None:
                self.revision += 1
                self.holder = Leader(action.name, self.revision, action.lease)
            return self.holder
        assert isinstance(action, Resign)
        self.leases.pop(action.lease, None)
        self.expire(now)
        return None


@dataclass
class Candidate:
    election: Election
    crashed: bool = False
    frozen_until: int = 0
    pending: tuple[int, int, Action, object, bool] | None = None  # (reply at, sent at, …, ok)


delays = st.integers(min_value=1, max_value=400).map(lambda ms: ms * MS)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    count = draw(st.integers(min_value=2, max_value=4))
    busy = 20 * S  # faults happen in the first 20 s; then 10 s of calm
    events = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["freeze", "crash", "outage"]),
                st.integers(min_value=0, max_value=busy // TICK).map(lambda t: t * TICK),
                st.integers(min_value=0, max_value=count - 1),
                st.integers(min_value=1, max_value=6000).map(lambda ms: ms * MS),
            ),
            max_size=6,
        )
    )
    return {"count": count, "events": events, "request": draw(delays), "reply": draw(delays)}


def _apply(candidate: Candidate, reply: object, sent_at: int, action: Action, ok: bool) -> None:
    election = candidate.election
    if not ok:
        election.failed(sent_at)
    elif isinstance(action, Grant):
        assert isinstance(reply, int)
        election.granted(sent_at, reply, SETTINGS.ttl_s)
    elif isinstance(action, KeepAlive):
        assert isinstance(reply, int)
        election.kept_alive(sent_at, reply)
    elif isinstance(action, Campaign):
        if reply is None:
            election.failed(sent_at)
        else:
            assert isinstance(reply, Leader)
            election.campaigned(sent_at, reply)


def simulate(scenario: dict[str, object], end: int = 30 * S) -> tuple[list[Candidate], Service]:
    count = scenario["count"]
    assert isinstance(count, int)
    request, reply_delay = scenario["request"], scenario["reply"]
    assert isinstance(request, int)
    assert isinstance(reply_delay, int)
    service = Service()
    candidates = [Candidate(Election(f"a{i}", SETTINGS)) for i in range(count)]
    events = scenario["events"]
    assert isinstance(events, list)
    for kind, at, _who, length in events:
        if kind == "outage":
            service.down.append((at, at + length))
    now = 0
    while now < end:
        for kind, at, who, length in events:
            if at == now and kind == "freeze":
                candidates[who].frozen_until = now + length
            elif at == now and kind == "crash":
                candidates[who].crashed = True
        service.expire(now)
        for candidate in candidates:
            if candidate.crashed or now < candidate.frozen_until:
                continue
            if candidate.pending is not None and candidate.pending[0] <= now:
                _, sent_at, action, reply, ok = candidate.pending
                candidate.pending = None
                _apply(candidate, reply, sent_at, action, ok)
            action = candidate.election.poll(now)
            if action is not None:
                arrives = now + request
                ok = service.available(arrives)
                reply = service.handle(action, arrives) if ok else None
                candidate.pending = (arrives + reply_delay, now, action, reply, ok)
        leaders = [c for c in candidates if not c.crashed and c.election.leading(now)]
        assert len(leaders) <= 1, f"two leaders at {now / S:.2f} s"
        for leader in leaders:
            held = service.holder
            assert held is not None
            assert held.name == leader.election.name, f"{leader.election.name} leads without key"
        now += TICK
    return candidates, service


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_never_two_leaders_and_someone_leads_after_calm(scenario: dict[str, object]) -> None:
    candidates, _ = simulate(scenario)
    alive = [c for c in candidates if not c.crashed]
    if alive:
        assert any(c.election.leading(30 * S - TICK) for c in alive)


def test_a_standby_takes_over_within_ttl_and_a_campaign_after_the_leader_crashes() -> None:
    scenario: dict[str, object] = {"count": 2, "events": [], "request": MS, "reply": MS}
    candidates, _ = simulate(scenario, end=2 * S)
    first = next(c for c in candidates if c.election.leading(2 * S - TICK))
    crash_at = 2 * S
    scenario["events"] = [("crash", crash_at, candidates.index(first), 0)]
    limit = crash_at + SETTINGS.ttl_s * S + int(SETTINGS.campaign_s * S) + 2 * TICK
    candidates, _ = simulate(scenario, end=limit)
    standby = next(c for c in candidates if not c.crashed)
    assert standby.election.leading(limit - TICK)


def test_resigning_hands_over_at_once() -> None:
    service = Service()
    one, two = Election("a1", SETTINGS), Election("a2", SETTINGS)
    for election in (one, two):
        lease = service.handle(Grant(SETTINGS.ttl_s), 0)
        assert isinstance(lease, int)
        election.granted(0, lease, SETTINGS.ttl_s)
        action = election.poll(0)
        assert isinstance(action, Campaign)
        holder = service.handle(action, 0)
        assert isinstance(holder, Leader)
        election.campaigned(0, holder)
    assert one.leading(TICK)
    assert not two.leading(TICK)
    resign = one.resign()
    assert resign is not None
    service.handle(resign, TICK)
    assert not one.leading(TICK)
    later = int(SETTINGS.campaign_s * S)
    action = two.poll(later)
    assert isinstance(action, Campaign)
    holder = service.handle(action, later)
    assert isinstance(holder, Leader)
    two.campaigned(later, holder)
    assert two.leading(later + TICK)
