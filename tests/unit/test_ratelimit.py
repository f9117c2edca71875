"""The token bucket behind the write limits and the issuer's /token limit."""

from __future__ import annotations

from shared.ratelimit import RateLimiter, WriteLimitSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [None, None, None]
    assert limiter.retry_after("a") == 1
    assert limiter.retry_after("b") is None  # one bucket per key
    clock.now += 0.5
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") == 1


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    limiter = RateLimiter(rate=0.1, burst=1, clock=Clock())
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") == 10


def test_forgotten_callers_start_with_a_full_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock, max_keys=2)
    for key in ("a", "b"):
        assert limiter.retry_after(key) is None
    clock.now += 5
    assert limiter.retry_after("c") is None
    assert limiter.retry_after("a") is None


def test_defaults_leave_room_for_benchmarks() -> None:
    settings = WriteLimitSettings()
    assert settings.write_rate_per_second >= 50
    assert settings.write_rate_burst >= 100
