"""The bench's statistics mean what its report says they mean."""

from __future__ import annotations

import math

import pytest

from bench import stats


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 4.0
    assert stats.percentile(values, 50) == 2.5
    assert stats.percentile(values, 99) == pytest.approx(3.97)


def test_percentile_ignores_input_order() -> None:
    assert stats.percentile([5, 1, 4, 2, 3], 50) == 3


def test_percentile_of_one_value_is_that_value() -> None:
    assert stats.percentile([7.5], 99) == 7.5


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_refuses_q_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        stats.percentile([1.0], q)


def test_percentile_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        stats.percentile([], 50)


def test_spread_is_range_over_median_in_percent() -> None:
    assert stats.spread_pct([90.0, 100.0, 110.0]) == pytest.approx(20.0)
    assert stats.spread_pct([0.0, 0.0]) == 0.0


def test_summarize_keeps_every_run() -> None:
    summary = stats.summarize([3.0, 1.0, 2.0])
    assert summary["median"] == 2.0
    assert (summary["min"], summary["max"]) == (1.0, 3.0)
    assert summary["runs"] == [3.0, 1.0, 2.0]


def test_ratio_pairs_each_target_run_with_its_baseline() -> None:
    summary = stats.ratio([50.0, 60.0, 40.0], [100.0, 100.0, 100.0])
    assert summary["runs"] == [0.5, 0.6, 0.4]
    assert summary["median"] == 0.5
    assert math.isinf(stats.ratio([1.0], [0.0])["median"])
    with pytest.raises(ValueError, match="one baseline per target"):
        stats.ratio([1.0, 2.0], [1.0])
