"""Markdown tables and PNG plots of a simulator run.

Plots use matplotlib's Agg backend (no display); each run gets one figure with two panels: the
hottest key's admitted rate (trailing 1-s window) against the policy, one line per
architecture, and the decision latency CDFs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.sim.figures import Row, Verdict
from bench.sim.runner import Played
from bench.sim.spec import Run

__all__ = ["markdown_table", "plot_run", "verdict_table"]

NS = 1_000_000_000
#: Step of the admitted-rate curve.
_STEP_NS = NS // 10
_COLOURS = {"A": "tab:red", "B": "tab:orange", "C": "tab:blue"}

_COLUMNS = (
    ("run", "shape (network)", "{}"),
    ("arch", "arch", "{}"),
    ("offered_per_s", "offered/s", "{:,.0f}"),
    ("admitted_per_s", "admitted/s", "{:,.1f}"),
    ("p50_us", "p50 µs", "{:,.0f}"),
    ("p99_us", "p99 µs", "{:,.0f}"),
    ("p999_us", "p99.9 µs", "{:,.0f}"),
    ("late_p99_ms", "late p99 ms", "{:,.0f}"),
    ("window_overshoot", "worst 1-s over r+b", "{:.1%}"),
    ("peak_window_ratio", "peak 1-s / r", "{:.2f}"),
    ("run_overshoot", "run-long over rT+b", "{:.1%}"),
    ("delta_vs_exact", "Δ vs exact", "{:+d}"),
    ("false_rejection_rate", "false rej. under limit", "{:.2%}"),
    ("room_rejection_rate", "rej. with room", "{:.1%}"),
    ("errors", "fail-open", "{:d}"),
    ("reports_per_s", "reports/s", "{:.0f}"),
    ("service_cpu_per_m", "svc CPU s/M", "{:.0f}"),
    ("redis_cpu_per_m", "redis CPU s/M", "{:.0f}"),
)


def _cell(fmt: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows: shape × architecture; columns as in ``_COLUMNS``."""
    head = "| " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    rule = "|" + "|".join("---" if i < 2 else "--:" for i in range(len(_COLUMNS))) + "|"
    body = [
        "| " + " | ".join(_cell(fmt, getattr(row, name)) for name, _, fmt in _COLUMNS) + " |"
        for row in rows
    ]
    return "\n".join([head, rule, *body])


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """Each target, what was measured, and met / MISSED / not measured."""
    label = {True: "met", False: "**MISSED**", None: "not measured"}
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | {label[v.met]} |" for v in verdicts]
    return "\n".join(lines)


def _trailing_rate(at_ns: np.ndarray, span_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Admitted hits in the trailing second, sampled every 100 ms."""
    grid = np.arange(_STEP_NS, span_ns + 1, _STEP_NS)
    counts = np.searchsorted(at_ns, grid) - np.searchsorted(at_ns, grid - NS)
    return grid / NS, counts


def plot_run(run: Run, played: Sequence[Played], path: Path) -> None:
    """Write the run's figure (admitted rate vs policy; latency CDFs) to ``path``."""
    fig, (rate_ax, cdf_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    span_ns = int(run.shape.duration_s * NS)
    hottest = 0  # key 0 is the most popular under every popularity
    limit = run.shape.limit
    for p in played:
        rec, colour = p.records, _COLOURS.get(p.arch)
        mine = (rec["key"] == hottest) & rec["admitted"]
        t, counts = _trailing_rate(np.sort(rec["at_ns"][mine]), span_ns)
        rate_ax.plot(t, counts, label=f"{p.arch} admitted", color=colour, lw=1.4)
        lat = np.sort(rec["latency_ns"]) / 1e3
        cdf_ax.plot(lat, np.linspace(0, 1, lat.size, endpoint=False), label=p.arch, color=colour)
    rate_ax.axhline(limit.rate_per_s, color="k", ls="--", lw=1, label="policy r")
    rate_ax.axhline(limit.rate_per_s + limit.capacity, color="grey", ls=":", lw=1, label="r + b")
    if run.shape.restart_at_s is not None:
        rate_ax.axvline(run.shape.restart_at_s, color="grey", lw=1, label="service restart")
    rate_ax.set(
        xlabel="seconds",
        ylabel="admitted in trailing 1 s (hottest key)",
        title=f"{run.label}: admitted vs policy {limit}",
    )
    rate_ax.set_ylim(bottom=0)
    rate_ax.legend(fontsize=8)
    cdf_ax.set(xscale="log", xlabel="decision latency µs (log)", ylabel="fraction of requests")
    cdf_ax.set_title("decision latency CDF at the client")
    cdf_ax.grid(True, which="both", alpha=0.3)
    cdf_ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
