"""The clock scheduler: fires the legal requests' reminders, breaches and window ends.

One instance leads (its own advisory lock, like the relay and the reconciler); the timers live
in PostgreSQL, so a restarted or replaced leader picks up exactly where the last one stopped,
and each timer fires once even if two instances ever overlap (`requests.clocks`).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.context import Context
from services.registry.requests import clocks
from services.registry.requests.rules import REMINDER_THRESHOLDS, Clock, system_clock
from services.router.leader import run_as_leader, sleep_or_stop
from services.router.metrics import RouterMetrics
from services.router.relay import asyncpg_dsn

logger = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x0CA5E5C10C4
# the scheduler never hashes selectors: its context only names the topic namespace
NO_SELECTOR_KEY = b""


class Scheduler:
    """Fires due timers every `interval` seconds while it leads."""

    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        *,
        database_url: str,
        prefix: str,
        metrics: RouterMetrics,
        clock: Clock = system_clock,
        interval: float = 1.0,
        batch: int = 100,
    ) -> None:
        self._sm, self._dsn = sm, asyncpg_dsn(database_url)
        self._ctx = Context(hmac_key=NO_SELECTOR_KEY, topic_prefix=prefix)
        self._metrics, self._clock = metrics, clock
        self._interval, self._batch = interval, batch

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop`, firing while this instance holds the scheduler lock."""

        async def fire_while_leading(_conn: asyncpg.Connection) -> None:
            while not stop.is_set():
                while await self.tick() >= self._batch:
                    pass
                if await sleep_or_stop(stop, self._interval):
                    return

        await run_as_leader(
            name="clock scheduler",
            dsn=self._dsn,
            lock_key=SCHEDULER_LOCK_KEY,
            stop=stop,
            lock_retry=2.0,
            failure_retry=1.0,
            work=fire_while_leading,
        )

    async def tick(self) -> int:
        """One pass over the due timers; returns how many this pass fired."""
        fired = await clocks.fire_due(self._sm, clock=self._clock, ctx=self._ctx, limit=self._batch)
        for f in fired:
            if f.breached:
                self._metrics.deadline_breaches.labels(kind=f.label).inc()
            elif f.point in REMINDER_THRESHOLDS:
                threshold = REMINDER_THRESHOLDS[f.point]
                self._metrics.deadline_reminders.labels(kind=f.label, threshold=threshold).inc()
        if fired:
            logger.info("clock timers fired", extra={"fired": len(fired)})
        return len(fired)
