"""In-process token buckets, one per caller, shared by the issuer's /token and the write APIs;
and the failure throttle that slows password and secret guessing without locking anyone out.

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


@dataclass
class _Failures:
    count: int
    last: float
    blocked_until: float


class FailureThrottle:
    """Progressive delays after failed authentications, per key, never before a first failure.

    Keys name who failed from where, such as (client id, peer address): only failures under a
    key delay attempts under the same key, so someone else's failures, from another address,
    never refuse valid credentials. After `free` failures each further one doubles the wait,
    up to `max_delay`; a success clears the key, and a quiet `forget_after` seconds too.
    """

    def __init__(
        self,
        *,
        free: int,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._free, self._base, self._max = free, base_delay, max_delay
        self._forget_after = forget_after
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, _Failures] = {}

    def retry_after(self, key: str) -> int | None:
        """Whole seconds before `key` may try again, or None; takes nothing from the key."""
        entry = self._current(key)
        if entry is None or entry.blocked_until <= self._clock():
            return None
        return max(1, math.ceil(entry.blocked_until - self._clock()))

    def failed(self, key: str) -> None:
        """Count a failure under `key`; past the free ones, the next attempt must wait."""
        now = self._clock()
        entry = self._current(key)
        if entry is None:
            self._make_room(now)
            entry = self._failures[key] = _Failures(count=0, last=now, blocked_until=now)
        entry.count += 1
        entry.last = now
        over = entry.count - self._free
        if over > 0:
            entry.blocked_until = now + min(self._max, self._base * 2 ** min(over - 1, 32))

    def succeeded(self, key: str) -> None:
        """Forget `key`'s failures: whoever holds the credentials starts afresh."""
        self._failures.pop(key, None)

    def _current(self, key: str) -> _Failures | None:
        entry = self._failures.get(key)
        if entry is not None and self._clock() - entry.last >= self._forget_after:
            del self._failures[key]
            return None
        return entry

    def _make_room(self, now: float) -> None:
        # Keep the keys still waiting, longest waits first: forgetting them would be a reset.
        if len(self._failures) < self._max_keys:
            return
        waiting = sorted(
            ((k, f) for k, f in self._failures.items() if f.blocked_until > now),
            key=lambda item: item[1].blocked_until,
            reverse=True,
        )
        self._failures = dict(waiting[: self._max_keys // 2])


@dataclass
class GuessingThrottle:
    """Failed sign-ins or client authentications, throttled per (account, peer) and per peer.

    The pair stops one address from guessing one account's secret; the peer alone stops it
    from spreading guesses over many accounts. Neither is touched by a request until it fails,
    and neither names an account alone, so no one can lock out a client or a person they do
    not share an address with.
    """

    per_account: FailureThrottle
    per_peer: FailureThrottle

    @classmethod
    def create(cls, *, free_per_account: int, free_per_peer: int) -> GuessingThrottle:
        return cls(
            per_account=FailureThrottle(free=free_per_account),
            per_peer=FailureThrottle(free=free_per_peer),
        )

    def retry_after(self, *, account: str, peer: str) -> int | None:
        """Seconds this peer must wait before trying `account` again, or None."""
        waits = (
            self.per_account.retry_after(_pair(account, peer)),
            self.per_peer.retry_after(peer),
        )
        return max((wait for wait in waits if wait is not None), default=None)

    def failed(self, *, account: str, peer: str) -> None:
        self.per_account.failed(_pair(account, peer))
        self.per_peer.failed(peer)

    def succeeded(self, *, account: str, peer: str) -> None:
        # The peer's own count stays: a success on one account says nothing about the others.
        self.per_account.succeeded(_pair(account, peer))


def _pair(account: str, peer: str) -> str:
    return f"{peer} {account}"


def peer_address(client: tuple[str, int] | None) -> str:
    """The address a limit keys on: the connection's peer, as the server resolved it.

    uvicorn replaces it from X-Forwarded-For only for proxies in FORWARDED_ALLOW_IPS, so a
    header sent by anyone else changes nothing here.
    """
    return client[0] if client else "unknown"


class WriteLimitSettings(BaseSettings):
    """Per-client limits on the write endpoints of intake and registry, and on their reads.

    Generous by default: they exist to contain a misbehaving client, not to shape the traffic
    of well-behaved ones (the intake benchmark spreads its load over five clients). Reads are
    limited too because each one writes an access-audit entry: without a limit, one client
    could grow the audit log as fast as it can send GETs for made-up ids.
    """

    model_config = SettingsConfigDict(extra="ignore")

    write_rate_per_second: float = Field(default=100.0, alias="WRITE_RATE_PER_SECOND", gt=0)
    write_rate_burst: int = Field(default=200, alias="WRITE_RATE_BURST", ge=1)
    read_rate_per_second: float = Field(default=100.0, alias="READ_RATE_PER_SECOND", gt=0)
    read_rate_burst: int = Field(default=200, alias="READ_RATE_BURST", ge=1)

    def write_limiter(self) -> RateLimiter:
        """A fresh limiter for one app; each process keeps its own buckets."""
        return RateLimiter(rate=self.write_rate_per_second, burst=self.write_rate_burst)

    def read_limiter(self) -> RateLimiter:
        """A fresh limiter for one app's reads, apart from its writes' buckets."""
        return RateLimiter(rate=self.read_rate_per_second, burst=self.read_rate_burst)
