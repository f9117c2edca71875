"""The embedded issuer end to end: tokens it signs are accepted by the real TokenValidator.

The validator reaches the issuer app through httpx's ASGITransport, so discovery, JWKS and
token requests all cross a real HTTP client stack, against a real PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.issuer import clients, keys
from services.issuer.app import create_app
from services.issuer.models import ClientKind
from services.issuer.settings import IssuerSettings
from services.registry.reference.models import Platform
from shared.auth import TokenValidator
from shared.errors import Unauthorized
from shared.state import ServiceState, state_of

pytestmark = pytest.mark.integration

ISSUER = "http://127.0.0.1:8003"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
Register = Callable[..., Awaitable[tuple[str, str | None]]]


def issuer_settings(database_url: str, **overrides: Any) -> IssuerSettings:
    values = {"DATABASE_URL": database_url, "OAUTH_ISSUER": ISSUER, "DATABASE_POOL_SIZE": 2}
    values |= {"ISSUER_TOKEN_RATE": 1000, "ISSUER_TOKEN_BURST": 1000} | overrides
    return IssuerSettings.model_validate(values)


@pytest.fixture(scope="session")
async def issuer_app(database_url: str, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The issuer over the suite's migrated database (`engine` loads the reference data)."""
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def sessionmaker(issuer_app: FastAPI) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = state_of(issuer_app, ServiceState).sessionmaker
    return maker


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


@pytest.fixture
async def http(issuer_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(issuer_app) as client:
        yield client


@pytest.fixture
def new_validator(issuer_app: FastAPI) -> Callable[[], TokenValidator]:
    """A validator with an empty key cache, like a freshly started resource server."""

    def make() -> TokenValidator:
        return TokenValidator(
            issuer=ISSUER,
            audience="caseshare",
            leeway_seconds=5,
            jwks_ttl_seconds=300,
            http=asgi_client(issuer_app),
        )

    return make


@pytest.fixture
def register(sessionmaker: async_sessionmaker[AsyncSession]) -> Register:
    async def register(
        kind: ClientKind = ClientKind.AUTHORITY, **fields: Any
    ) -> tuple[str, str | None]:
        client_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind is ClientKind.AUTHORITY:
            fields.setdefault("jurisdiction", "fr")
        if kind is ClientKind.PLATFORM:
            fields.setdefault("platform", "chirp")
        async with sessionmaker.begin() as session:
            secret = await clients.create_client(session, client_id=client_id, kind=kind, **fields)
        return client_id, secret

    return register


async def request_token(
    http: httpx.AsyncClient, client_id: str, secret: str | None, **form: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials", **form}
    if secret is None:
        return await http.post("/token", data=data)
    return await http.post("/token", data=data, auth=httpx.BasicAuth(client_id, secret))


async def validate(make: Callable[[], TokenValidator], token: str) -> Any:
    validator = make()
    try:
        return await validator.validate(token)
    finally:
        await validator.aclose()


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token, read without verification, to inspect what was signed."""
    signed = jws.extract_compact(token.encode())
    return dict(signed.headers()), json.loads(signed.payload)


def assertion(key: ECKey, client_id: str, jti: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


async def test_client_secret_basic_token_is_accepted(
    http: httpx.AsyncClient, register: Register, new_validator: Callable[[], TokenValidator]
) -> None:
    client_id, secret = await register()
    response = await request_token(http, client_id, secret)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    principal = await validate(new_validator, body["access_token"])
    assert (principal.subject, principal.client_id) == (client_id, client_id)
    assert principal.jurisdiction == "FR"
    assert principal.platform is None
    assert principal.scopes == {"cases:write", "cases:read", "inbox:read"}
    header, claims = unverified(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    assert claims["aud"] == "caseshare"
    assert claims["iss"] == ISSUER
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= claims["iat"] + 1


async def test_platform_gets_its_platform_claim_and_only_the_requested_scope(
    http: httpx.AsyncClient, register: Register, new_validator: Callable[[], TokenValidator]
) -> None:
    client_id, secret = await register(
        ClientKind.PLATFORM, scopes=["responses:write", "cases:read"]
    )
    response = await request_token(http, client_id, secret, scope="responses:write")
    assert response.json()["scope"] == "responses:write"
    principal = await validate(new_validator, response.json()["access_token"])
    assert (principal.platform, principal.jurisdiction) == ("chirp", None)
    assert principal.scopes == {"responses:write"}


@pytest.mark.parametrize("client", ["wrong-secret", "unknown-client"])
async def test_bad_client_credentials_are_invalid_client(
    http: httpx.AsyncClient, register: Register, client: str
) -> None:
    client_id, _secret = await register()
    if client == "unknown-client":
        client_id = "nobody"
    response = await request_token(http, client_id, "not-the-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("scope", ["responses:write", "cases:read bogus", "registry:admin"])
async def test_a_scope_outside_the_allowed_set_is_invalid_scope(
    http: httpx.AsyncClient, register: Register, scope: str
) -> None:
    client_id, secret = await register()
    response = await request_token(http, client_id, secret, scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_private_key_jwt_works_once_per_assertion(
    http: httpx.AsyncClient, register: Register, new_validator: Callable[[], TokenValidator]
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    jwks = {"keys": [key.as_dict(private=False)]}
    client_id, secret = await register(ClientKind.COORDINATOR, public_jwks=jwks)
    assert secret is None
    signed = assertion(key, client_id)
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    response = await request_token(http, client_id, None, **form)
    assert response.status_code == 200, response.text
    principal = await validate(new_validator, response.json()["access_token"])
    assert principal.scopes == {"fanout:read", "cases:read"}

    replay = await request_token(http, client_id, None, **form)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"


async def test_private_key_jwt_signed_by_another_key_is_refused(
    http: httpx.AsyncClient, register: Register
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    client_id, _ = await register(public_jwks={"keys": [key.as_dict(private=False)]})
    forged = assertion(ECKey.generate_key("P-256", auto_kid=True), client_id)
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": forged}
    response = await request_token(http, client_id, None, **form)
    assert response.json()["error"] == "invalid_client"


async def test_rotation_keeps_old_tokens_valid_for_the_grace_period_only(
    http: httpx.AsyncClient,
    register: Register,
    sessionmaker: async_sessionmaker[AsyncSession],
    new_validator: Callable[[], TokenValidator],
) -> None:
    client_id, secret = await register()
    old_token = (await request_token(http, client_id, secret)).json()["access_token"]
    old_kid = unverified(old_token)[0]["kid"]
    async with sessionmaker.begin() as session:
        new_kid = await keys.rotate(session, grace=timedelta(seconds=1))
    grace_ends = time.monotonic() + 1

    assert (await validate(new_validator, old_token)).client_id == client_id
    new_token = (await request_token(http, client_id, secret)).json()["access_token"]
    assert unverified(new_token)[0]["kid"] == new_kid

    await asyncio.sleep(max(0.0, grace_ends - time.monotonic()) + 0.2)
    published = {key["kid"] for key in (await http.get("/jwks.json")).json()["keys"]}
    assert old_kid not in published
    assert new_kid in published
    with pytest.raises(Unauthorized):
        await validate(new_validator, old_token)
    assert (await validate(new_validator, new_token)).client_id == client_id


async def test_token_requests_are_rate_limited(database_url: str) -> None:
    app = create_app(issuer_settings(database_url, ISSUER_TOKEN_RATE=0.5, ISSUER_TOKEN_BURST=2))
    async with app.router.lifespan_context(app), asgi_client(app) as http:
        answers = [await request_token(http, "nobody", "x") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert answers[2].json()["error"] == "temporarily_unavailable"


async def test_ensure_dev_clients_is_idempotent_and_keeps_secrets_private(
    http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    secrets_file = tmp_path / "state" / "dev-clients.json"
    platform = f"p{uuid.uuid4().hex[:6]}"
    iso = "DE"
    async with sessionmaker.begin() as session:
        session.add(Platform(slug=platform, name="Test platform", legal_rep_jurisdiction="BE"))
    async with sessionmaker.begin() as session:
        first = await clients.ensure_dev_clients(
            session, jurisdictions=[iso], platforms=[platform], secrets_file=secrets_file
        )
    async with sessionmaker.begin() as session:
        second = await clients.ensure_dev_clients(
            session, jurisdictions=[iso, "KR"], platforms=[platform], secrets_file=secrets_file
        )
    assert set(first) == {
        f"authority-{iso.lower()}",
        f"platform-{platform}",
        "coordinator",
        "admin",
    }
    assert {key: second[key] for key in first} == first
    assert set(second) - set(first) == {"authority-kr"}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert json.loads(secrets_file.read_text()) == second
    response = await request_token(http, "authority-kr", second["authority-kr"])
    assert response.status_code == 200, response.text


async def test_metadata_jwks_and_health(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/token"
    assert metadata["grant_types_supported"] == ["client_credentials", "authorization_code"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "private_key_jwt",
        "none",
    }
    assert "cases:write" in metadata["scopes_supported"]
    assert (await http.get("/.well-known/openid-configuration")).json() == metadata
    keys_document = (await http.get(metadata["jwks_uri"].removeprefix(ISSUER))).json()
    assert all("d" not in key for key in keys_document["keys"])
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("content", "headers", "error"),
    [
        (
            '{"grant_type": "client_credentials"}',
            {"content-type": "application/json"},
            "invalid_request",
        ),
        ("grant_type=client_credentials&grant_type=password", {}, "invalid_request"),
        ("grant_type=password&username=a&password=b", {}, "unsupported_grant_type"),
        (
            "grant_type=client_credentials&client_id=a",
            {"authorization": "Basic Yjpj"},
            "invalid_request",
        ),
    ],
)
async def test_malformed_token_requests_get_oauth_errors(
    http: httpx.AsyncClient, content: str, headers: dict[str, str], error: str
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded", **headers}
    response = await http.post("/token", content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == error
