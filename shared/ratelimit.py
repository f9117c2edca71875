"""In-process token buckets, one per caller, shared by the issuer's /token and the write APIs.

A limit per process, not per cluster: each replica lets a client through at the configured rate,
which is enough to stop one runaway integration from starving the others on a replica, and needs
no shared store. A cluster-wide quota belongs in the gateway in front of the services.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets kept in process, one per key (a client id or a peer address)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def retry_after(self, key: str) -> int | None:
        """Take one token for `key`; None if allowed, else whole seconds until one is free."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(tokens=self._burst, updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self._rate))

    def _make_room(self, now: float) -> None:
        # Forget callers whose bucket has refilled: they lose nothing by starting afresh.
        if len(self._buckets) < self._max_keys:
            return
        refill = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()


class WriteLimitSettings(BaseSettings):
    """Per-client limits on the write endpoints of intake and registry.

    Generous by default: they exist to contain a misbehaving client, not to shape the traffic
    of well-behaved ones (the intake benchmark spreads its load over five clients).
    """

    model_config = SettingsConfigDict(extra="ignore")

    write_rate_per_second: float = Field(default=100.0, alias="WRITE_RATE_PER_SECOND", gt=0)
    write_rate_burst: int = Field(default=200, alias="WRITE_RATE_BURST", ge=1)

    def write_limiter(self) -> RateLimiter:
        """A fresh limiter for one app; each process keeps its own buckets."""
        return RateLimiter(rate=self.write_rate_per_second, burst=self.write_rate_burst)
