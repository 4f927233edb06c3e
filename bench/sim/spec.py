"""Load and validate ``shapes.yaml``: traffic shapes, network models and profiles.

Everything the simulator plays is described here as data; this module turns the file into
frozen values once and names the offending entry when something is wrong, e.g.
``shapes.steady-2x.rate.multiple: must be a number > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ratekeeper.core.limits import Limit, parse_limits
from ratekeeper.errors import LimitParseError

__all__ = [
    "DEFAULT_SPEC",
    "KeySpec",
    "NetworkModel",
    "RateSpec",
    "Run",
    "Shape",
    "SpecError",
    "load_profile",
    "load_spec",
]

DEFAULT_SPEC = Path(__file__).with_name("shapes.yaml")


class SpecError(ValueError):
    """``shapes.yaml`` (or a file like it) is invalid; the message names the entry."""


@dataclass(frozen=True, slots=True)
class NetworkModel:
    """Latency added to each connection direction by :mod:`bench.sim.relay`."""

    #: Distribution name (a key of ``relay.SAMPLERS``); ``"none"`` adds nothing.
    dist: str = "none"
    #: Median one-way delay.
    median_ms: float = 0.0
    #: 99th percentile one-way delay (lognormal: sets the spread).
    p99_ms: float = 0.0
    #: How long one draw holds on a connection direction (0: a fresh draw per chunk).
    epoch_ms: float = 0.0

    @property
    def emulated(self) -> bool:
        return self.dist != "none"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """How a shape's traffic spreads over keys."""

    #: Number of distinct keys.
    count: int = 1
    #: ``uniform``, ``zipf`` (weight ∝ 1/rank^s) or ``hot`` (one key takes ``share``).
    popularity: str = "uniform"
    #: Zipf exponent.
    s: float = 1.0
    #: The hot key's share of the traffic.
    share: float = 0.9


@dataclass(frozen=True, slots=True)
class RateSpec:
    """The offered rate over time, in multiples of one key's limit."""

    #: ``steady``, ``step`` or ``boundary_burst``.
    kind: str
    #: Offered rate (steady; step after ``at_s``; each burst's hits per limit amount).
    multiple: float
    #: step: when the rate changes.
    at_s: float = 0.0
    #: step: the multiple before ``at_s``.
    before: float = 0.0
    #: boundary_burst: a burst straddles every ``every_s``-th wall-clock second boundary.
    every_s: int = 2
    #: boundary_burst: each half-burst lasts this long either side of the boundary.
    width_ms: float = 100.0


@dataclass(frozen=True, slots=True)
class Shape:
    """One traffic shape."""

    name: str
    #: The policy's limit the figures are measured against: of its limits, the one admitting
    #: the least over the run (``r·T + b``), i.e. the one that binds run-long.
    limit: Limit
    duration_s: float
    #: Client processes' Limiter instances (C) or RLS callers (A, B); each has its own id.
    clients: int
    keys: KeySpec
    rate: RateSpec
    #: Seed of the arrival schedule: same seed, same schedule, whatever the architecture.
    seed: int = 1
    #: Stop and restart the service at this offset (None: never).
    restart_at_s: float | None = None
    #: kill -9 one server at this offset, for good (a cluster: member 1; None: never).
    kill_at_s: float | None = None
    #: From this offset, restart every server in turn, each drained with hand-off (None: never).
    rolling_at_s: float | None = None
    #: Every limit of the policy (``"2/s; 20/minute"`` has two; ``()``: just ``limit``), as the
    #: service's config and every client declare it, bursts included.
    limits: tuple[Limit, ...] = ()

    @property
    def policy(self) -> tuple[Limit, ...]:
        """The whole policy every key is held to."""
        return self.limits or (self.limit,)


@dataclass(frozen=True, slots=True)
class Run:
    """One row group of the results: a shape over a network, played against each architecture."""

    shape: Shape
    network_name: str
    network: NetworkModel

    @property
    def label(self) -> str:
        return f"{self.shape.name} ({self.network_name})"


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _fraction(value: Any) -> bool:
    return _positive(value) and value < 1


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


#: Per field: (check, what the message says it must be).
_Check = tuple[Callable[[Any], bool], str]
_POSITIVE: _Check = (_positive, "a number > 0")
_NON_NEGATIVE: _Check = (_non_negative, "a number >= 0")
_COUNT: _Check = (_count, "an integer >= 1")

#: Fields each rate kind allows (beyond ``kind``) with their checks, and those it requires.
_RATE_FIELDS: dict[str, dict[str, _Check]] = {
    "steady": {"multiple": _POSITIVE},
    "step": {"multiple": _POSITIVE, "at_s": _POSITIVE, "before": _NON_NEGATIVE},
    "boundary_burst": {"multiple": _POSITIVE, "every_s": _COUNT, "width_ms": _POSITIVE},
}
_RATE_REQUIRED = {
    "steady": ("multiple",),
    "step": ("multiple", "at_s"),
    "boundary_burst": ("multiple",),
}
_KEY_FIELDS: dict[str, dict[str, _Check]] = {
    "uniform": {"count": _COUNT},
    "zipf": {"count": _COUNT, "s": _POSITIVE},
    "hot": {"count": _COUNT, "share": (_fraction, "a fraction in (0, 1)")},
}
_NETWORK_FIELDS: dict[str, _Check] = {
    "dist": (lambda v: v in ("lognormal", "constant"), "'lognormal' or 'constant'"),
    "median_ms": _POSITIVE,
    "p99_ms": _POSITIVE,
    "epoch_ms": _NON_NEGATIVE,
}


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _checked(raw: Mapping[str, Any], fields: Mapping[str, _Check], where: str) -> dict[str, Any]:
    """The fields of ``raw`` named in ``fields``, each checked; unknown fields are errors."""
    unknown = set(raw) - set(fields)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; allowed {sorted(fields)}")
    for name, (check, what) in fields.items():
        if name in raw and not check(raw[name]):
            raise SpecError(f"{where}.{name}: must be {what}, got {raw[name]!r}")
    return dict(raw)


def _kinded(
    raw: Any,
    table: Mapping[str, Mapping[str, _Check]],
    tag: str,
    where: str,
    required: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Check a mapping whose ``tag`` field picks which other fields are allowed."""
    data = dict(_mapping(raw, where))
    kind = data.pop(tag, None)
    if kind not in table:
        raise SpecError(f"{where}.{tag}: must be one of {sorted(table)}, got {kind!r}")
    fields = table[kind]
    missing = [name for name in (required or {}).get(kind, ()) if name not in data]
    if missing:
        raise SpecError(f"{where}: {kind} needs {missing}")
    return kind, _checked(data, fields, where)


def _network(raw: Any, where: str) -> NetworkModel:
    data = _checked(_mapping(raw, where), _NETWORK_FIELDS, where)
    if not data:
        return NetworkModel()
    model = NetworkModel(**data)
    if model.p99_ms < model.median_ms:
        raise SpecError(f"{where}: p99_ms must be >= median_ms")
    return model


_SHAPE_FIELDS: dict[str, _Check] = {
    "limit": (lambda v: isinstance(v, str), "limits such as '50/s' or '2/s; 20/minute burst 5'"),
    "duration_s": _POSITIVE,
    "clients": _COUNT,
    "keys": (lambda v: isinstance(v, Mapping), "a mapping"),
    "rate": (lambda v: isinstance(v, Mapping), "a mapping"),
    "seed": (lambda v: isinstance(v, int), "an integer"),
    "restart_at_s": _POSITIVE,
    "kill_at_s": _POSITIVE,
    "rolling_at_s": _POSITIVE,
}


def _shape(name: str, raw: Any, overrides: Mapping[str, Any] | None = None) -> Shape:
    where = f"shapes.{name}"
    data = _checked({**_mapping(raw, where), **(overrides or {})}, _SHAPE_FIELDS, where)
    for required in ("limit", "duration_s", "clients", "rate"):
        if required not in data:
            raise SpecError(f"{where}: missing {required!r}")
    try:
        limits = parse_limits(data["limit"])
    except LimitParseError as exc:
        raise SpecError(f"{where}.limit: {exc}") from exc
    if any(lim.amount < 1 for lim in limits):  # a limit of 0 blocks everything: nothing to measure
        raise SpecError(f"{where}.limit: must admit at least 1 hit per period")
    duration = float(data["duration_s"])
    limit = min(limits, key=lambda lim: lim.rate_per_s * duration + lim.capacity)
    kind, rate = _kinded(data["rate"], _RATE_FIELDS, "kind", f"{where}.rate", _RATE_REQUIRED)
    popularity, keys = _kinded(
        data.get("keys", {"popularity": "uniform"}), _KEY_FIELDS, "popularity", f"{where}.keys"
    )
    shape = Shape(
        name=name,
        limit=limit,
        duration_s=float(data["duration_s"]),
        clients=data["clients"],
        keys=KeySpec(popularity=popularity, **keys),
        rate=RateSpec(kind=kind, **rate),
        seed=data.get("seed", 1),
        restart_at_s=data.get("restart_at_s"),
        kill_at_s=data.get("kill_at_s"),
        rolling_at_s=data.get("rolling_at_s"),
        limits=limits if len(limits) > 1 or limits[0].burst is not None else (),
    )
    _check_timing(shape, where)
    return shape


def _check_timing(shape: Shape, where: str) -> None:
    events = (shape.restart_at_s, shape.kill_at_s, shape.rolling_at_s)
    inside = (shape.rate.at_s if shape.rate.kind == "step" else 0.0, *(t or 0.0 for t in events))
    if any(t >= shape.duration_s for t in inside):
        raise SpecError(f"{where}: at_s and the *_at_s events must fall inside duration_s")
    if not math.isfinite(shape.duration_s):
        raise SpecError(f"{where}.duration_s: must be finite")


def load_spec(path: Path = DEFAULT_SPEC) -> dict[str, list[Run]]:
    """Every profile in ``path``, each a list of runs with its overrides applied."""
    raw = _mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    networks = {
        name: _network(body, f"networks.{name}")
        for name, body in _mapping(raw.get("networks", {}), "networks").items()
    }
    shapes = _mapping(raw.get("shapes", {}), "shapes")
    profiles: dict[str, list[Run]] = {}
    for profile, entries in _mapping(raw.get("profiles", {}), "profiles").items():
        if not isinstance(entries, list) or not entries:
            raise SpecError(f"profiles.{profile}: expected a non-empty list of runs")
        profiles[profile] = [
            _run(entry, shapes, networks, f"profiles.{profile}[{i}]")
            for i, entry in enumerate(entries)
        ]
    for name, body in shapes.items():  # shapes no profile uses are still validated
        _shape(name, body)
    return profiles


def _run(
    entry: Any, shapes: Mapping[str, Any], networks: Mapping[str, NetworkModel], where: str
) -> Run:
    data = dict(_mapping(entry, where))
    name, network = data.pop("shape", None), data.pop("network", "loopback")
    if name not in shapes:
        raise SpecError(f"{where}.shape: unknown shape {name!r}; known {sorted(shapes)}")
    if network not in networks:
        raise SpecError(f"{where}.network: unknown network {network!r}; known {sorted(networks)}")
    return Run(_shape(name, shapes[name], data), network, networks[network])


def load_profile(name: str, path: Path = DEFAULT_SPEC) -> list[Run]:
    """The runs of one profile."""
    profiles = load_spec(path)
    if name not in profiles:
        raise SpecError(f"{path}: no profile {name!r}; known {sorted(profiles)}")
    return profiles[name]
