"""Summary statistics for repeated runs: median, percentiles and the spread between runs.

Kept dependency-free (no numpy) and pure so the unit tests pin down exactly what a reported
p99 or spread means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict


class Summary(TypedDict):
    """A figure over several runs: the median, the extremes and the relative spread."""

    median: float
    min: float
    max: float
    spread_pct: float
    runs: list[float]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default, so figures compare with other tools' reports.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def spread_pct(values: Sequence[float]) -> float:
    """(max - min) / median, in percent: how far the runs disagree."""
    mid = median(values)
    if mid == 0:
        return 0.0
    return (max(values) - min(values)) / abs(mid) * 100


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        median=median(values),
        min=float(min(values)),
        max=float(max(values)),
        spread_pct=spread_pct(values),
        runs=[float(v) for v in values],
    )


def ratio(target: Sequence[float], baseline: Sequence[float]) -> Summary:
    """Per-run ratios target/baseline, summarised: each pair ran back to back, under the
    same machine load, so the per-run ratio is steadier than a ratio of medians."""
    if len(target) != len(baseline):
        raise ValueError("ratio needs one baseline per target run")
    return summarize([t / b if b else math.inf for t, b in zip(target, baseline, strict=True)])
