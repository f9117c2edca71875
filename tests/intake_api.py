"""Drive the intake app in process with real access tokens, as authorities and platforms.

The same fake issuer as the registry harness (`tests.registry_api.Issuer`) signs the tokens and
serves its JWKS through `httpx.MockTransport`, so every request passes the real validation.
Callers are named by what their token says: an authority's jurisdiction, a platform's slug.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import HMAC_KEY
from tests.registry_api import AUDIENCE, ISSUER, Issuer

AUTHORITY_SCOPES = ("cases:write", "cases:read", "inbox:read")
PLATFORM_SCOPES = ("responses:write",)


@dataclass
class Intake:
    app: FastAPI
    client: httpx.AsyncClient
    issuer: Issuer

    def authority(self, code: str, *, client_id: str | None = None) -> dict[str, str]:
        """Headers of a national authority's client for jurisdiction `code`."""
        client = client_id or f"authority-{code.lower()}"
        return self.issuer.auth(*AUTHORITY_SCOPES, client_id=client, jurisdiction=code)

    def platform(self, slug: str, *, client_id: str | None = None) -> dict[str, str]:
        """Headers of a platform's law-enforcement response team."""
        client = client_id or f"platform-{slug}"
        return self.issuer.auth(*PLATFORM_SCOPES, client_id=client, platform=slug)


def settings_for(database_url: str, topic_prefix: str, **extra: Any) -> IntakeSettings:
    values = {
        "DATABASE_URL": database_url,
        "DATABASE_POOL_SIZE": 4,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "OAUTH_ISSUER": ISSUER,
        "OAUTH_AUDIENCE": AUDIENCE,
        "SELECTOR_HMAC_KEY": HMAC_KEY,
        **extra,
    }
    return IntakeSettings.model_validate(values)


@asynccontextmanager
async def running(settings: IntakeSettings) -> AsyncIterator[Intake]:
    """The app with its lifespan run, and an in-process client."""
    issuer = Issuer()
    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle))
    app = create_app(settings, http=http)  # the app closes `http` at shutdown
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client,
    ):
        yield Intake(app=app, client=client, issuer=issuer)
