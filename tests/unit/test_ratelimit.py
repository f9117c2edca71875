"""The token bucket behind the write limits and the issuer's /token limit."""

from __future__ import annotations

from shared.ratelimit import FailureThrottle, RateLimiter, WriteLimitSettings


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


def test_failures_are_free_then_progressively_delayed() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=3, base_delay=1, max_delay=8, clock=clock)
    waits = []
    for _ in range(7):
        waits.append(throttle.retry_after("c|peer"))
        throttle.failed("c|peer")
        clock.now += 0.1
    assert waits[:4] == [None, None, None, None]
    assert waits[4:] == [1, 2, 4]
    throttle.failed("c|peer")
    throttle.failed("c|peer")
    assert throttle.retry_after("c|peer") == 8  # capped at max_delay


def test_only_the_failing_key_waits_and_a_success_clears_it() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=1, clock=clock)
    for _ in range(5):
        throttle.failed("c|attacker")
    assert throttle.retry_after("c|attacker") is not None
    assert throttle.retry_after("c|victim") is None  # same client, another peer
    throttle.succeeded("c|attacker")
    assert throttle.retry_after("c|attacker") is None


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=0, base_delay=1, forget_after=60, clock=clock)
    throttle.failed("k")
    throttle.failed("k")
    clock.now += 61
    throttle.failed("k")
    assert throttle.retry_after("k") == 1  # counted from one again


def test_a_full_table_keeps_blocked_keys() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=0, clock=clock, max_keys=2)
    for _ in range(5):
        throttle.failed("blocked")  # now waits 16 s
    clock.now += 5
    throttle.failed("old")
    throttle.failed("new")
    assert throttle.retry_after("blocked") is not None
