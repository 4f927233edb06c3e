"""The fast path answers, counts and stores exactly what the general path does.

Two processors are fed the same reports: one whose gate is the whole space of a memory store
(so steady compact reports take :mod:`ratekeeper.protocol.report_fast`), one whose gate checks
ownership (so every report takes the general path). Reports mix what qualifies with what does
not: keys sent in full, unknown ids, counts out of range or clamped, two ids naming one
counter, fixed windows, shadow mode, unlimited keys, repeats and skipped report numbers, policy
reloads, long gaps (expiry) and several clients sharing counters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor, ReportSettings
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import MemoryStats

MS = 1_000_000
START = 1_700_000_000 * NS_PER_SECOND
#: Small bounds, so that clamps, debt caps and expiry all happen within a few reports.
#: No restart watch: the general side's gate owns every key by check, not the whole space, so
#: only the fast side would watch (tests/protocol/test_report_restart.py covers the watch).
SETTINGS = ReportSettings(
    max_interval_ns=NS_PER_SECOND,
    count_bound_intervals=1,
    max_count=1_000,
    chunk_keys=2,
    restart_cold_ns=0,
)


def _policy(rate: int) -> PolicyTree:
    return PolicyTree.from_mapping(
        {
            "domain": "api",
            "descriptors": [
                {"key": "user", "rate_limit": {"unit": "second", "requests_per_unit": rate}},
                {
                    "key": "win",
                    "rate_limit": {
                        "unit": "second",
                        "requests_per_unit": 4,
                        "algorithm": "fixed_window",
                    },
                },
                {
                    "key": "shadow",
                    "shadow_mode": True,
                    "rate_limit": {"unit": "second", "requests_per_unit": 2},
                },
                {"key": "free", "unlimited": True},
            ],
        }
    )


POLICIES = (_policy(5), _policy(50))
#: What a client may name: most keys per-user buckets, a few of every other kind.
NAMES = [("user", f"u{i}") for i in range(6)] + [
    ("win", "w"),
    ("shadow", "s"),
    ("free", "f"),
    ("inline", "i"),
]
INLINE = (Limit(3, Unit.SECOND),)


class EveryKey:
    """Owns every key, but is not the whole space: its gate sends reports the general way."""

    def owns(self, key_hash: int) -> bool:
        return True


@dataclass
class Side:
    """One processor, its store and its stats."""

    general: bool
    policy: int = 0
    store: MemoryStore = field(default_factory=lambda: MemoryStore(max_keys=64, shards=4))
    stats: MemoryStats = field(default_factory=MemoryStats)
    processor: ReportProcessor = field(init=False)

    def __post_init__(self) -> None:
        gate = StoreGate(self.store, EveryKey()) if self.general else StoreGate(self.store)

        async def pause() -> None:
            await asyncio.sleep(0)

        self.processor = ReportProcessor(
            gate, lambda: POLICIES[self.policy], SETTINGS, self.stats, pause
        )


#: A report step: time gap, client, sequence step (0 repeat, 1 next, 3 skip), reload, keys,
#: omit unchanged answers, the client's previous keys again (as a steady client sends them).
#: A key: (name index, admitted, rejected, sent in full, with an extra id for the same key).
#: Mostly what qualifies (known per-user buckets, counts in range), now and then what does not.
def _mostly(usual: st.SearchStrategy[int], rare: list[int]) -> st.SearchStrategy[int]:
    """``usual`` 19 times in 20, else one of ``rare``."""
    return st.tuples(st.integers(0, 19), usual, st.sampled_from(rare)).map(
        lambda t: t[2] if t[0] == 0 else t[1]
    )


counts = _mostly(st.integers(0, 12), [-1, 30, 200, 1_000, 1_001])
names = _mostly(st.integers(0, 5), list(range(6, len(NAMES))))
rarely = st.sampled_from([False] * 15 + [True])
keys = st.lists(
    st.tuples(names, counts, counts, rarely, rarely),
    min_size=1,
    max_size=5,
    unique_by=lambda k: k[0],
)
steps = st.lists(
    st.tuples(
        st.sampled_from([0, 10 * MS, 100 * MS, 100 * MS, 700 * MS, 5 * NS_PER_SECOND]),
        st.integers(0, 2),
        st.sampled_from([1, 1, 1, 0, 3]),
        st.sampled_from([False] * 7 + [True]),
        keys,
        st.booleans(),
        st.sampled_from([False, True, True]),
    ),
    min_size=1,
    max_size=40,
)


@dataclass
class Client:
    """What a client knows of the server: the ids it interned, its report number."""

    name: str
    ids: dict[int, int] = field(default_factory=dict)
    next_id: int = 1
    sequence: int = 0
    last: list[tuple[int, int, int, bool, bool]] = field(default_factory=list)


def _report(client: Client, sent: list[tuple[int, int, int, bool, bool]], omit: bool) -> Report:
    full: list[KeyCounts] = []
    known: list[tuple[int, int, int]] = []
    for name, admitted, rejected, in_full, twin in sent:
        key, value = NAMES[name]
        domain = "other" if key == "inline" else "api"
        limits = INLINE if key == "inline" else ()
        if name in client.ids and not in_full:
            known.append((client.ids[name], admitted, rejected))
            if twin:
                known.append((client.ids[name] + 1000, admitted, rejected))  # maybe unknown
            continue
        key_id = client.ids[name] = client.next_id
        client.next_id += 1
        full.append(KeyCounts(domain, ((key, value),), admitted, rejected, limits, key_id))
        if twin:  # the same key under a second id: two ids, one counter
            full.append(KeyCounts(domain, ((key, value),), 0, 0, limits, key_id + 1000))
    ids, admitted, rejected = zip(*known, strict=True) if known else ((), (), ())
    return Report(
        client.name, tuple(full), 100 * MS, client.sequence, ids, admitted, rejected, omit
    )


Key = tuple[int, int, int, bool, bool]
Script = list[tuple[int, int, int, bool, list[Key], bool, bool]]


async def _run(script: Script) -> None:
    fast, general = Side(general=False), Side(general=True)
    clients = [Client(f"c{i}") for i in range(3)]
    now = START
    for gap, who, step, reload, sent, omit, again in script:
        now += gap
        if reload:
            fast.policy = general.policy = 1 - fast.policy
        client = clients[who]
        if again and client.last:  # the same keys by id, new counts
            sent = [
                (name, *sent[i % len(sent)][1:3], False, False)
                for i, (name, *_) in enumerate(client.last)
            ]
        client.last = sent
        client.sequence += step
        report = _report(client, sent, omit)
        answers: list[ReportAnswer | str] = []
        for side in (fast, general):
            try:
                answers.append(await side.processor.process(report, now))
            except Exception as exc:  # both sides must refuse alike
                answers.append(repr(exc))
        assert answers[0] == answers[1]
        assert fast.stats.events == general.stats.events
        assert await fast.store.export(0, HASH_SPACE, now) == await general.store.export(
            0, HASH_SPACE, now
        )


@settings(max_examples=150, deadline=None)
@given(script=steps)
def test_the_fast_path_answers_and_counts_as_the_general_path(script: Script) -> None:
    asyncio.run(_run(script))


def test_a_steady_report_takes_the_fast_path() -> None:
    async def go() -> None:
        side = Side(general=False)
        first = Report("c", (KeyCounts("api", (("user", "u1"),), 1, 0, (), 1),), 100 * MS, 1)
        await side.processor.process(first, START)
        steady = Report("c", (), 100 * MS, 2, (1,), (2,), (0,), True)
        fast = side.processor._fast
        assert fast is not None
        assert await fast.resolve(steady, POLICIES[0], 100 * MS) is not None
        await side.processor.process(steady, START + 100 * MS)

    asyncio.run(go())
