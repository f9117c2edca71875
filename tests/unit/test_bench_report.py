"""The bench's report says what was measured against what, and never invents a verdict."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report, scale, stats


def results(**extra: Any) -> dict[str, Any]:
    return {
        "figures": [
            {
                "name": "intake registrations/s vs commit ceiling",
                "target": "100 req/s",
                "baseline": "1000 req/s",
                "ratio": stats.ratio([100, 110], [1000, 1000]),
                "goal": "≥ 0.5",
                "met": False,
            },
            {
                "name": "intake vs bare endpoint",
                "target": "100 req/s",
                "baseline": "3000 req/s",
                "ratio": None,
                "goal": "context",
                "met": None,
            },
        ],
        "memory": {"peak_mib": {"intake": 151.0, "router": 99.0}},
        **extra,
    }


def test_targets_show_their_verdict_and_context_rows_none() -> None:
    rows = report.table(results()).splitlines()
    assert "| 0.105 (±5%) | ≥ 0.5 | **no** |" in rows[2]
    assert rows[3].endswith("| - | context | - |")


def test_the_rss_budget_is_checked_per_service() -> None:
    rows = report.table(results()).splitlines()
    assert rows[-2].startswith("| RSS intake")
    assert rows[-2].endswith("| **no** |")
    assert rows[-1].startswith("| RSS router")
    assert rows[-1].endswith("| yes |")


def test_a_failed_phase_is_a_missed_row_not_a_silence() -> None:
    table = report.table(results(failed_phases={"e2e": "RuntimeError('3 records')"}))
    assert "| e2e phase | failed: RuntimeError('3 records') | - | - | - | **no** |" in table


def test_growth_is_per_round_largest_over_smallest() -> None:
    points = [
        {"size": 10**4, "rounds": [{"x": 2.0}, {"x": 4.0}]},
        {"size": 10**5, "rounds": [{"x": 9.0}, {"x": 9.0}]},
        {"size": 10**6, "rounds": [{"x": 3.0}, {"x": 5.0}]},
    ]
    grew = scale.growth(points, "x")
    assert grew["runs"] == [1.5, 1.25]
    assert grew["median"] == pytest.approx(1.375)
