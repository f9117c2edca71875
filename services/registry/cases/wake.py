"""Waking the outbox relay after registrations made in one statement, one NOTIFY at a time.

`register_case` alone does not NOTIFY from inside its transaction (migration 0016):
PostgreSQL serialises notifying commits on one lock held across each commit's WAL flush, which
capped them at 460-1,500/s at 16 connections where plain commits reached 3,700-5,000/s. The
registration's caller rings the bell instead, once its statement has committed. A ring sends
one NOTIFY on the relay's channel from a pooled connection, in the background, so the
registration's answer does not wait for it. While one is in flight, rings only ask for one
more after it: events committed while the first was on its way may not have been visible to
the relay it woke. So a burst costs a NOTIFY per round trip, not one per registration, and the
last registration of a burst is always followed by a NOTIFY sent after its commit.

If a NOTIFY fails, the relay's half-second poll still publishes the event.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.store.outbox import CHANNEL
from shared.db import single_statements

logger = logging.getLogger(__name__)

_NOTIFY = f"NOTIFY {CHANNEL}"


class Bell:
    """At most one NOTIFY in flight; rings meanwhile are folded into one more after it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def ring(self) -> None:
        """Ask for a NOTIFY sent after now; returns at once."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        # A context of its own: the NOTIFY carries no request's bound token or trace.
        self._task = asyncio.create_task(self._send(), context=contextvars.Context())

    async def settle(self) -> None:
        """Return once no NOTIFY is in flight (shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _send(self) -> None:
        again = True
        while again:
            self._again = False
            try:
                async with single_statements(self._sessionmaker) as conn:
                    await conn.execute(_NOTIFY)
            except Exception as exc:  # the relay's poll publishes the events anyway
                logger.warning("outbox wake-up failed", extra={"error": type(exc).__name__})
            again = self._again


async def settle(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Wait for the NOTIFY in flight, if any: before its engine's pool is closed."""
    bell = _BELLS.get(sessionmaker)
    if bell is not None:
        await bell.settle()


def ring(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Ring the bell of the database behind `sessionmaker` (one bell per sessionmaker)."""
    bell = _BELLS.get(sessionmaker)
    if bell is None:
        bell = _BELLS[sessionmaker] = Bell(sessionmaker)
    bell.ring()


_BELLS: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], Bell] = (
    weakref.WeakKeyDictionary()
)
