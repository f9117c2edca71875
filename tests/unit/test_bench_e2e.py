"""The end-to-end bench's stage breakdown: each step from the milestone before it."""

from __future__ import annotations

import pytest

from bench.e2e import Arrivals, describe, stages


def test_each_step_runs_from_the_milestone_before_and_batches_share_a_marking() -> None:
    wall = 1000.0  # perf_counter 0 is wall clock 1000 s
    sent = {"a": 0.0, "b": 0.010}
    answered = {"a": 0.008, "b": 0.020}
    arrivals = Arrivals({"a": {"t1": 0.040, "t2": 0.045}, "b": {"t1": 0.050}})
    stamps = {
        # received, relayed, fan-out begun, last published, marking began (the batch)
        "a": [1000.002, 1000.012, 1000.015, 1000.035, 1000.036],
        "b": [1000.013, 1000.018, 1000.020, 1000.040, 1000.036],
    }

    got = stages(sent, answered, arrivals, stamps, wall)

    assert got["intake"]["p50"] == pytest.approx(2.5)  # 2 and 3 ms
    assert got["relay"]["p50"] == pytest.approx(7.5)  # 10 and 5 ms
    assert got["router_pickup"]["p50"] == pytest.approx(2.5)  # 3 and 2 ms
    assert got["fanout"]["p50"] == pytest.approx(20.0)
    assert got["reader"]["p50"] == pytest.approx(10.0)  # to the last of a's two: 10 ms
    assert got["answered"]["p50"] == pytest.approx(9.0)
    assert got["total"]["p50"] == pytest.approx(42.5)  # 45 and 40 ms
    assert got["batch"] == {"count": 1, "mean": 2.0, "max": 2}
    assert "batches 1 (mean 2.0, max 2)" in describe(got)


def test_a_response_never_received_is_left_out() -> None:
    stamps = {"a": [0.0, 0.0, 0.0, 0.0, 0.0]}
    assert stages({"a": 0.0}, {"a": 0.0}, Arrivals(), stamps, 0.0) == {}
