"""The scale curve as a picture: each scale figure against the number of registered cases.

Written by the bench beside its JSON (`bench/results/scale-curve[-label].png`) and shown in
BENCHMARKS.md. A bare `Figure` (no pyplot) renders off-screen; nothing here needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from bench import report, stats

PANELS = (
    ("intake_p50_ms", "intake POST /v1/cases p50 (ms), 2 connections"),
    ("router_cpu_ms_per_delivery", "router CPU per delivery (ms)"),
    ("inbox_ms", "inbox first page, query (ms)"),
    ("case_map_ms", "case map, query (ms)"),
)


def scale_curve(points: list[dict[str, Any]], label: str | None) -> Path:
    """Draw the medians (and the range of the rounds) of every figure, and peak RSS."""
    sizes = [p["size"] for p in points]
    fig = Figure(figsize=(20, 4.2))
    axes = fig.subplots(1, len(PANELS) + 1)
    for ax, (key, title) in zip(axes, PANELS, strict=False):
        values = [[r[key] for r in p["rounds"]] for p in points]
        mids = [stats.median(v) for v in values]
        ax.plot(sizes, mids, marker="o")
        ax.fill_between(sizes, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
    rss = axes[-1]
    for service in points[0]["peak_mib"]:
        rss.plot(sizes, [p["peak_mib"][service] for p in points], marker="o", label=service)
    rss.axhline(report.RSS_BUDGET_MIB, color="red", linestyle="--", label="budget")
    rss.set_title("peak RSS per service (MiB)", fontsize=10)
    rss.set_ylim(bottom=0)
    rss.legend(fontsize=8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("registered cases")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = report.RESULTS / f"scale-curve{'-' + label if label else ''}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out
