"""The relay's wake-up: a commit notified while a round publishes starts the next round at
once, instead of waiting for another commit or the half-second poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest

from services.router import relay as relay_module
from services.router.relay import OutboxRelay


class Listening:
    """The leader's connection, as far as the relay uses it: one listener."""

    def __init__(self) -> None:
        self.notify: Callable[..., None] | None = None

    async def add_listener(self, _channel: str, callback: Callable[..., None]) -> None:
        self.notify = callback


class Watched(asyncio.Event):
    """Remembers, for each wait, whether a wake-up was already pending."""

    def __init__(self) -> None:
        super().__init__()
        self.pending_at_wait: list[bool] = []

    async def wait(self) -> Literal[True]:
        self.pending_at_wait.append(self.is_set())
        return await super().wait()


async def test_a_notify_during_a_round_wakes_the_next_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn, stop = Listening(), asyncio.Event()

    async def lead(*, work: Callable[[Any], Awaitable[None]], **_: object) -> None:
        await work(conn)

    monkeypatch.setattr(relay_module, "run_as_leader", lead)
    relay = OutboxRelay(
        None,  # type: ignore[arg-type]
        None,
        None,  # type: ignore[arg-type]
        database_url="postgresql+asyncpg://relay@localhost/caseshare",
        batch=500,
    )
    relay._wake = wake = Watched()
    rounds = 0

    async def publish_batch() -> int:
        nonlocal rounds
        rounds += 1
        assert conn.notify is not None
        if rounds == 1:
            conn.notify()  # a commit lands after this round's snapshot
        else:
            stop.set()
        return 1

    monkeypatch.setattr(relay, "publish_batch", publish_batch)
    await relay.run(stop)

    assert rounds == 2
    # after the first round the wake-up was already pending: the second did not wait for one
    assert wake.pending_at_wait[0] is True
