"""Readiness checks shared by the services: the database answers, the broker accepts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Check = Callable[[], Awaitable[None]]


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)

    return check


def broker_check(bootstrap: str) -> Check:
    """A TCP handshake with the first reachable bootstrap server (no client state kept)."""

    async def check() -> None:
        last: Exception | None = None
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
            except (OSError, TimeoutError) as exc:
                last = exc
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise ConnectionError("no bootstrap server reachable") from last

    return check
