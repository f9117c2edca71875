"""Leadership for the router's singleton loops (outbox relay, reconciler).

Each holds a PostgreSQL session advisory lock on its own connection: one instance leads, the
others wait, and a crashed leader's lock is released with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

logger = logging.getLogger(__name__)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when asked to stop; True if stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def run_as_leader(
    *,
    name: str,
    dsn: str,
    lock_key: int,
    stop: asyncio.Event,
    lock_retry: float,
    failure_retry: float,
    work: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    """Until `stop`: wait for the lock, run `work` while holding it, and start over (new
    connection) after any database or broker failure."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
            try:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                    if await sleep_or_stop(stop, lock_retry):
                        return
                await work(conn)
            finally:
                await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("%s interrupted; retrying", name, exc_info=True)
            await sleep_or_stop(stop, failure_retry)
