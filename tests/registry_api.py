"""Drive the registry app in process, with real access tokens and, for streams, a real server.

The issuer's metadata and JWKS are served by an `httpx.MockTransport` handed to `create_app`,
so every request goes through the real token validation. `httpx.ASGITransport` buffers whole
responses, which never ends for an event stream, so `serving` runs the app under uvicorn on a
loopback port for the stream tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from caseshare.stack.embedded import free_port
from services.registry.app import create_app
from services.registry.settings import RegistrySettings

ISSUER = "http://issuer.test"
AUDIENCE = "caseshare"
COORDINATOR = "fanout:read"
ADMIN = "registry:admin"


@dataclass
class Issuer:
    """Publishes one ES256 key the way an authorization server would, and signs tokens."""

    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", auto_kid=True))

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        return httpx.Response(404)

    def token(
        self, *scopes: str, client_id: str = "coordination-desk", lifetime: int = 300, **extra: str
    ) -> str:
        """A signed access token valid for `lifetime` seconds; `extra` adds claims such as
        `jurisdiction` or `platform`."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": client_id,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + lifetime,
            **extra,
        }
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"], default_type=None)

    def auth(
        self, *scopes: str, client_id: str = "coordination-desk", **extra: str
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes, client_id=client_id, **extra)}"}


@dataclass
class Registry:
    app: FastAPI
    client: httpx.AsyncClient
    issuer: Issuer


def settings_for(database_url: str, topic_prefix: str, **extra: Any) -> RegistrySettings:
    values = {
        "DATABASE_URL": database_url,
        "DATABASE_POOL_SIZE": 3,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "OAUTH_ISSUER": ISSUER,
        "OAUTH_AUDIENCE": AUDIENCE,
        "REGISTRY_STREAM_POLL_SECONDS": 0.05,
        **extra,
    }
    return RegistrySettings.model_validate(values)


@asynccontextmanager
async def running(settings: RegistrySettings) -> AsyncIterator[Registry]:
    """The app with its lifespan run, and an in-process client for ordinary requests."""
    issuer = Issuer()
    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle))
    app = create_app(settings, http=http)  # the app closes `http` at shutdown
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://registry.test") as client,
    ):
        yield Registry(app=app, client=client, issuer=issuer)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # uvicorn offers no event for "listening"
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass(frozen=True)
class Sse:
    id: str
    event: str
    data: dict[str, Any]


async def read_events(response: httpx.Response, count: int, *, seconds: float = 5.0) -> list[Sse]:
    """The next `count` events of a stream (keep-alive comments skipped), or TimeoutError."""
    events: list[Sse] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(seconds):
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                events.append(Sse(fields["id"], fields["event"], orjson.loads(fields["data"])))
                if len(events) == count:
                    return events
            fields = {}
    return events


async def next_events(lines: AsyncIterator[str], count: int | None) -> list[Sse]:
    """The next `count` events from one iterator over a stream's lines, or (None) every event
    until the server ends the stream; keep-alive comments are skipped."""
    events: list[Sse] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(5):
        async for line in lines:
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                events.append(Sse(fields["id"], fields["event"], orjson.loads(fields["data"])))
                if len(events) == count:
                    return events
            fields = {}
    assert count is None, "the stream ended early"
    return events
