"""A webhook receiver on loopback that tests start, stop and restart on the same port.

It is a real HTTP server (uvicorn) around a tiny ASGI app that keeps every request it got and
answers with the status its plan says: a list of statuses to give first, then 204. While it is
stopped its port refuses connections, which is what an outage looks like to the hub.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import free_port
from services.registry.webhooks.models import WebhookEndpoint
from services.registry.webhooks.rules import EndpointState
from shared.db import transaction


async def delete_every_endpoint(sm: async_sessionmaker[AsyncSession]) -> None:
    """Endpoints are committed: tests delete them after use, so no later test's events queue
    messages for them and no jurisdiction reaches its endpoint limit."""
    async with transaction(sm) as s:
        await s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.state != EndpointState.DELETED)
            .values(state=EndpointState.DELETED, deleted_at=datetime.now(UTC))
        )


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers `fail_first` with their statuses, in order, then 204 to everything."""

    port: int = field(default_factory=free_port)
    fail_first: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by every accepted call
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.fail_first.pop(0) if self.fail_first else 204
        self.received.append(Received(headers, body, status))
        if 200 <= status < 300:
            self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, lifespan="off", log_config=None, ws="none"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):  # uvicorn offers no event for "listening"
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the receiver did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        self._server, self._task = None, None
