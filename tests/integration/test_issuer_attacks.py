"""The issuer under the attacks of issue 15: client probing, oversized bodies, lockouts, spoofing.

Each test drives the real issuer app over HTTP (httpx's ASGITransport, whose `client` sets the
peer address) against the suite's PostgreSQL, the way an outside attacker would reach it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.issuer import clients
from services.issuer.app import create_app
from services.issuer.models import ClientKind
from tests.integration.test_issuer import (
    ASSERTION_TYPE,
    ISSUER,
    asgi_client,
    assertion,
    issuer_settings,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def issuer_app(database_url: str, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def sessionmaker(issuer_app: FastAPI) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = issuer_app.state.sessionmaker
    return maker


@pytest.fixture
async def http(issuer_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(issuer_app) as client:
        yield client


async def new_client(
    sessionmaker: async_sessionmaker[AsyncSession], kind: ClientKind, **fields: Any
) -> tuple[str, str | None]:
    client_id = f"{kind}-{uuid.uuid4().hex[:8]}"
    async with sessionmaker.begin() as session:
        secret = await clients.create_client(session, client_id=client_id, kind=kind, **fields)
    return client_id, secret


def _b64(data: dict[str, Any] | str) -> str:
    raw = data if isinstance(data, str) else json.dumps(data)
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _claims(client_id: str, **overrides: Any) -> dict[str, Any]:
    claims = {"iss": client_id, "sub": client_id, "aud": f"{ISSUER}/token", "jti": "j", "exp": 1}
    return claims | overrides


async def post_assertion(http: httpx.AsyncClient, signed: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    return await http.post("/token", data=form)


async def test_private_key_jwt_for_a_secret_client_is_answered_like_an_unknown_client(
    http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    secret_client, _ = await new_client(sessionmaker, ClientKind.AUTHORITY, jurisdiction="FR")
    key = ECKey.generate_key("P-256", auto_kid=True)
    answers = [
        await post_assertion(http, assertion(key, client_id))
        for client_id in (secret_client, "admin-does-not-exist-" + uuid.uuid4().hex)
    ]
    assert [answer.status_code for answer in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "make",
    [
        lambda cid: "not-a-jwt",
        lambda cid: "a.b.c",
        lambda cid: f"{_b64({'alg': 'ES256'})}.{_b64('not json')}.sig",
        lambda cid: f"{_b64({'alg': 'ES256'})}.{_b64('[1, 2]')}.sig",
        lambda cid: f"{_b64('[]')}.{_b64(_claims(cid))}.sig",
        lambda cid: f"{_b64({'alg': 'none'})}.{_b64(_claims(cid))}.",
        lambda cid: f"{_b64({'alg': 'ES256', 'kid': 7})}.{_b64(_claims(cid))}.c2ln",
        lambda cid: f"{_b64({'alg': 'HS256'})}.{_b64(_claims(cid))}.c2ln",
        lambda cid: f"{_b64({'alg': 'ES256'})}.{_b64(_claims(cid, sub=['x']))}.c2ln",
        lambda cid: f"{_b64({'alg': 'ES256'})}.{_b64(_claims(cid, exp='soon'))}.c2ln",
        lambda cid: f"{_b64({'alg': 'ES256'})}.{_b64(_claims(cid))}.!!!",
    ],
)
@pytest.mark.parametrize("kind", [ClientKind.AUTHORITY, ClientKind.COORDINATOR, "unknown"])
async def test_malformed_assertions_are_invalid_client_never_a_crash(
    http: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    make: Any,
    kind: ClientKind | str,
) -> None:
    if kind == "unknown":
        client_id = "nobody-" + uuid.uuid4().hex
    elif kind is ClientKind.AUTHORITY:
        client_id, _ = await new_client(sessionmaker, kind, jurisdiction="FR")
    else:
        jwks = {"keys": [ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False)]}
        client_id, _ = await new_client(sessionmaker, ClientKind.COORDINATOR, public_jwks=jwks)
    response = await post_assertion(http, make(client_id))
    assert response.status_code in {400, 401}, response.text
    assert response.json()["error"] in {"invalid_client", "invalid_request"}


async def test_a_validly_signed_assertion_with_odd_claims_is_refused(
    http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    client_id, _ = await new_client(
        sessionmaker, ClientKind.COORDINATOR, public_jwks={"keys": [key.as_dict(private=False)]}
    )
    for claims in (_claims(client_id, exp=True), _claims(client_id, jti=["a"], exp=2**40)):
        signed = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
        response = await post_assertion(http, signed)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("path", ["/token", "/authorize"])
async def test_oversized_bodies_are_refused_before_they_are_read(
    http: httpx.AsyncClient, path: str
) -> None:
    body = "grant_type=client_credentials&pad=" + "x" * (64 * 1024)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    streamed = await http.post(path, content=chunks(), headers=headers)
    assert streamed.status_code == 413
