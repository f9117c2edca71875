"""The issuer's private signing keys are never in the database in the clear (issue 15, 1).

Read as an attacker with database access would read them (raw SQL, the whole row as text),
while the real issuer keeps issuing tokens the real validator accepts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caseshare.stack.embedded import EmbeddedPostgres
from services.issuer import clients, keys
from services.issuer.app import create_app
from services.issuer.models import ClientKind
from services.issuer.state import IssuerState
from services.registry import migrate
from shared.auth import TokenValidator
from shared.keywrap import KeyRing
from shared.state import ServiceState, state_of
from tests import databases
from tests.integration.test_issuer import (
    ISSUER,
    asgi_client,
    issuer_settings,
    request_token,
    unverified,
)

pytestmark = pytest.mark.integration

ROW = text("SELECT kid, sealed_private_jwk, CAST(signing_keys AS text) AS whole FROM signing_keys")


@pytest.fixture
async def running(database_url: str, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        yield app


def validator_for(app: FastAPI) -> Callable[[], TokenValidator]:
    def make() -> TokenValidator:
        return TokenValidator(
            issuer=ISSUER,
            audience="caseshare",
            leeway_seconds=5,
            jwks_ttl_seconds=300,
            http=asgi_client(app),
        )

    return make


async def token_for(app: FastAPI) -> str:
    async with state_of(app, ServiceState).sessionmaker.begin() as session:
        client_id = f"authority-{uuid.uuid4().hex[:8]}"
        secret = await clients.create_client(
            session, client_id=client_id, kind=ClientKind.AUTHORITY, jurisdiction="FR"
        )
    async with asgi_client(app) as http:
        answer = await request_token(http, client_id, secret)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def accepted(app: FastAPI, token: str) -> bool:
    validator = validator_for(app)()
    try:
        return (await validator.validate(token)).jurisdiction == "FR"
    finally:
        await validator.aclose()


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(ROW)).all())


async def test_the_stored_key_holds_no_private_material_and_tokens_verify(
    running: FastAPI, engine: AsyncEngine
) -> None:
    token = await token_for(running)
    kid = unverified(token)[0]["kid"]
    [row] = [r for r in await rows(engine) if r.kid == kid]
    ring: KeyRing = state_of(running, IssuerState).key_ring
    private = json.loads(ring.open(row.sealed_private_jwk, context=kid))
    assert private["kid"] == kid
    assert private["d"]
    assert private["d"] not in row.whole
    assert '"d"' not in row.whole
    assert row.sealed_private_jwk.startswith(f"v1.{ring.current_id}.")
    for other in await rows(engine):
        assert '"d"' not in other.whole
    assert await accepted(running, token)


async def test_a_new_kek_reseals_the_active_key_and_old_tokens_still_verify(
    database_url: str, running: FastAPI, engine: AsyncEngine
) -> None:
    token = await token_for(running)
    kid = unverified(token)[0]["kid"]
    old: KeyRing = state_of(running, IssuerState).key_ring
    rotated = KeyRing.parse(f"{KeyRing.generate().spec()},{old.spec()}")
    app = create_app(issuer_settings(database_url, KEY_ENCRYPTION_KEY=rotated.spec()))
    async with app.router.lifespan_context(app):
        [row] = [r for r in await rows(engine) if r.kid == kid]
        assert rotated.is_current(row.sealed_private_jwk)
        assert await accepted(app, token)
        newer = await token_for(app)
        assert unverified(newer)[0]["kid"] == kid
        assert await accepted(app, newer)
    # Put the suite's own KEK back in charge, for the tests that follow.
    async with state_of(running, ServiceState).sessionmaker.begin() as session:
        await keys.rotate(session, grace=timedelta(seconds=900), ring=old)


async def test_a_key_no_kek_opens_is_replaced_not_fatal(
    database_url: str, running: FastAPI, engine: AsyncEngine
) -> None:
    token = await token_for(running)
    stranger = create_app(
        issuer_settings(database_url, KEY_ENCRYPTION_KEY=KeyRing.generate().spec())
    )
    async with stranger.router.lifespan_context(stranger):
        newer = await token_for(stranger)
        assert unverified(newer)[0]["kid"] != unverified(token)[0]["kid"]
        assert await accepted(stranger, token)  # the old key stays published
    async with state_of(running, ServiceState).sessionmaker.begin() as session:
        await keys.ensure_active_key(session, state_of(running, IssuerState).key_ring)


async def test_migration_removes_clear_keys_and_keeps_their_tokens_verifiable(
    postgres: EmbeddedPostgres,
) -> None:
    url = databases.create_empty(postgres, prefix="sealkeys")
    await asyncio.to_thread(migrate.upgrade, url, "0006")
    clear = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)
    async with databases.engine_for(url) as db, db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO signing_keys (kid, private_jwk, public_jwk, activated_at)"
                " VALUES (:kid, CAST(:private AS jsonb), CAST(:public AS jsonb), :now)"
            ),
            {
                "kid": clear.kid,
                "private": json.dumps(clear.as_dict(private=True)),
                "public": json.dumps(clear.as_dict(private=False)),
                "now": datetime.now(UTC),
            },
        )
    await asyncio.to_thread(migrate.upgrade, url)
    async with databases.engine_for(url) as db:
        [row] = await rows(db)
        async with db.connect() as conn:
            retired = await conn.scalar(text("SELECT retired_at FROM signing_keys"))
    assert row.sealed_private_jwk is None
    assert clear.as_dict(private=True)["d"] not in row.whole
    assert retired is not None
    assert retired > datetime.now(UTC) + timedelta(seconds=800)

    app = create_app(issuer_settings(url))
    async with app.router.lifespan_context(app), asgi_client(app) as http:
        published = {key["kid"] for key in (await http.get("/jwks.json")).json()["keys"]}
    assert clear.kid in published  # tokens it signed live out their lifetime
    assert len(published) == 2  # and a new, sealed key signs from now on
