"""Sign-in at the embedded issuer: authorization code with PKCE (S256) for public clients.

Driven over HTTP through httpx's ASGITransport against a real PostgreSQL, the way the dashboard
and a browser would: authorization request, sign-in form, redirect with a code, token request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.issuer import clients, users
from services.issuer.app import create_app
from services.issuer.authorize import hash_code
from services.issuer.models import AuthorizationCode, ClientKind
from shared.auth import TokenValidator
from shared.state import ServiceState, state_of
from tests.integration.test_issuer import ISSUER, asgi_client, issuer_settings

pytestmark = pytest.mark.integration

REDIRECT = "https://dashboard.test/dashboard/callback"


@dataclass
class Pkce:
    verifier: str = ""
    challenge: str = ""

    @classmethod
    def make(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


@dataclass
class Account:
    client_id: str
    email: str
    password: str


@pytest.fixture(scope="module")
async def issuer_app(database_url: str, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def sessionmaker(issuer_app: FastAPI) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = state_of(issuer_app, ServiceState).sessionmaker
    return maker


@pytest.fixture
def new_validator(issuer_app: FastAPI) -> Callable[[], TokenValidator]:
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
async def http(issuer_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(issuer_app) as client:
        yield client


async def new_account(
    sessionmaker: async_sessionmaker[AsyncSession], *, scopes: tuple[str, ...] = ("fanout:read",)
) -> Account:
    tag = uuid.uuid4().hex[:8]
    account = Account(f"public-{tag}", f"Person-{tag}@caseshare.test", secrets.token_urlsafe(12))
    async with sessionmaker.begin() as session:
        await clients.create_client(
            session, client_id=account.client_id, kind=ClientKind.PUBLIC, redirect_uris=[REDIRECT]
        )
        await users.create_user(
            session, email=account.email, password=account.password, scopes=scopes
        )
    return account


@pytest.fixture
async def account(sessionmaker: async_sessionmaker[AsyncSession]) -> Account:
    return await new_account(sessionmaker)


def authorization(account: Account, pkce: Pkce, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": account.client_id,
        "redirect_uri": REDIRECT,
        "scope": "fanout:read",
        "state": "state-" + uuid.uuid4().hex,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    return {k: v for k, v in (params | overrides).items() if v != ""}


async def sign_in(
    http: httpx.AsyncClient, params: dict[str, str], email: str, password: str
) -> httpx.Response:
    return await http.post(
        "/authorize",
        data={**params, "email": email, "password": password},
        headers={"origin": ISSUER},
    )


def redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def redeem(
    http: httpx.AsyncClient, account: Account, code: str, verifier: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": account.client_id,
        "code_verifier": verifier,
    }
    return await http.post("/token", data=form)


async def code_for(http: httpx.AsyncClient, account: Account, pkce: Pkce) -> str:
    answer = await sign_in(http, authorization(account, pkce), account.email, account.password)
    return redirected(answer)["code"]


async def test_sign_in_code_and_token(
    http: httpx.AsyncClient, account: Account, new_validator: Callable[[], TokenValidator]
) -> None:
    pkce = Pkce.make()
    params = authorization(account, pkce)
    page = await http.get("/authorize", params=params)
    assert page.status_code == 200
    assert '<label for="password">' in page.text
    assert "style-src 'nonce-" in page.headers["content-security-policy"]
    answer = await sign_in(http, params, account.email.upper(), account.password)
    query = redirected(answer)
    assert query["state"] == params["state"]
    assert "httponly" in answer.headers["set-cookie"].lower()

    token = await redeem(http, account, query["code"], pkce.verifier)
    assert token.status_code == 200, token.text
    assert "refresh_token" not in token.json()
    validator = new_validator()
    try:
        principal = await validator.validate(token.json()["access_token"])
    finally:
        await validator.aclose()
    assert principal.client_id == account.client_id
    assert principal.scopes == {"fanout:read"}
    assert uuid.UUID(principal.subject)


async def test_a_signed_in_browser_is_not_asked_again(
    http: httpx.AsyncClient, account: Account
) -> None:
    await code_for(http, account, Pkce.make())
    again = await http.get("/authorize", params=authorization(account, Pkce.make()))
    assert redirected(again)["code"]


async def test_wrong_password_shows_the_form_again(
    http: httpx.AsyncClient, account: Account
) -> None:
    answer = await sign_in(http, authorization(account, Pkce.make()), account.email, "wrong")
    assert answer.status_code == 200
    assert 'role="alert"' in answer.text
    assert "set-cookie" not in answer.headers


async def test_a_code_redeems_once(http: httpx.AsyncClient, account: Account) -> None:
    pkce = Pkce.make()
    code = await code_for(http, account, pkce)
    assert (await redeem(http, account, code, pkce.verifier)).status_code == 200
    replay = await redeem(http, account, code, pkce.verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


async def test_a_wrong_verifier_fails_and_burns_the_code(
    http: httpx.AsyncClient, account: Account
) -> None:
    pkce = Pkce.make()
    code = await code_for(http, account, pkce)
    wrong = await redeem(http, account, code, Pkce.make().verifier)
    assert wrong.json()["error"] == "invalid_grant"
    assert (await redeem(http, account, code, pkce.verifier)).json()["error"] == "invalid_grant"


async def test_an_expired_code_is_refused(
    http: httpx.AsyncClient, account: Account, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pkce = Pkce.make()
    code = await code_for(http, account, pkce)
    async with sessionmaker.begin() as session:
        await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == hash_code(code))
            .values(expires_at=AuthorizationCode.created_at)
        )
    assert (await redeem(http, account, code, pkce.verifier)).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
        {"code_challenge": "", "code_challenge_method": ""},
        {"scope": "registry:admin"},
    ],
)
async def test_bad_requests_go_back_to_the_client_with_an_error(
    http: httpx.AsyncClient, account: Account, overrides: dict[str, str]
) -> None:
    params = authorization(account, Pkce.make(), **overrides)
    query = redirected(await http.get("/authorize", params=params))
    assert query["error"] in {"invalid_request", "invalid_scope"}
    assert query["state"] == params["state"]
    assert "code" not in query


async def test_a_user_without_the_scope_is_refused(
    http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    account = await new_account(sessionmaker, scopes=("cases:read",))
    answer = await sign_in(
        http, authorization(account, Pkce.make()), account.email, account.password
    )
    assert redirected(answer)["error"] == "access_denied"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "https://evil.test/callback"},
        {"redirect_uri": REDIRECT + "/extra"},
        {"client_id": "nobody"},
    ],
)
async def test_an_unverified_redirect_is_never_followed(
    http: httpx.AsyncClient, account: Account, overrides: dict[str, str]
) -> None:
    answer = await http.get("/authorize", params=authorization(account, Pkce.make(), **overrides))
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "cannot be used" in answer.text


async def test_public_clients_cannot_use_client_credentials(
    http: httpx.AsyncClient, account: Account
) -> None:
    answer = await http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": account.client_id}
    )
    assert answer.status_code in {400, 401}
    assert answer.json()["error"] in {"invalid_client", "unauthorized_client"}


async def test_confidential_clients_cannot_use_the_authorization_endpoint(
    http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], account: Account
) -> None:
    client_id = f"coordinator-{uuid.uuid4().hex[:6]}"
    async with sessionmaker.begin() as session:
        await clients.create_client(session, client_id=client_id, kind=ClientKind.COORDINATOR)
    params = authorization(account, Pkce.make(), client_id=client_id)
    answer = await http.get("/authorize", params=params)
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_cross_origin_sign_in_is_refused(http: httpx.AsyncClient, account: Account) -> None:
    answer = await http.post(
        "/authorize",
        data={**authorization(account, Pkce.make()), "email": account.email, "password": "x"},
        headers={"origin": "https://evil.test"},
    )
    assert answer.status_code == 403


async def test_ensure_dev_users_keeps_the_password_private_and_stable(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    users_file = tmp_path / "dev-users.json"
    async with sessionmaker.begin() as session:
        first = await users.ensure_dev_users(session, users_file=users_file)
    async with sessionmaker.begin() as session:
        second = await users.ensure_dev_users(session, users_file=users_file)
        found = await users.authenticate(
            session, email=users.DEV_COORDINATOR, password=second[users.DEV_COORDINATOR]
        )
    assert first == second
    assert found is not None
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert json.loads(users_file.read_text()) == second


def test_public_clients_hold_no_credential() -> None:
    with pytest.raises(ValueError, match="redirect URI"):
        clients._check_public(ClientKind.PUBLIC, secret=None, public_jwks=None, redirect_uris=())
    with pytest.raises(ValueError, match="no secret"):
        clients._check_public(
            ClientKind.PUBLIC, secret="s", public_jwks=None, redirect_uris=[REDIRECT]
        )
