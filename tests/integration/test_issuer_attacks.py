"""The issuer under the attacks of issue 15: client probing, oversized bodies, lockouts, spoofing.

Each test drives the real issuer app over HTTP (httpx's ASGITransport, whose `client` sets the
peer address) against the suite's PostgreSQL, the way an outside attacker would reach it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caseshare.stack.embedded import free_port
from services.issuer import clients
from services.issuer.app import create_app
from services.issuer.models import ClientKind
from shared.state import ServiceState, state_of
from shared.web import proxy_options
from tests.integration.test_authorize import Pkce, authorization, new_account
from tests.integration.test_issuer import (
    ASSERTION_TYPE,
    ISSUER,
    assertion,
    issuer_settings,
    request_token,
)

pytestmark = pytest.mark.integration


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
async def http(issuer_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client from an address of its own, so no other test's failures count against it."""
    async with from_peer(issuer_app, random_peer()) as client:
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


def random_peer() -> str:
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def from_peer(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


async def test_wrong_secrets_naming_a_client_do_not_stop_it_getting_tokens(
    database_url: str, engine: AsyncEngine
) -> None:
    """Finding 3: the real client, elsewhere, gets every token while an attacker guesses."""
    app = create_app(issuer_settings(database_url, ISSUER_TOKEN_RATE=1, ISSUER_TOKEN_BURST=10))
    async with app.router.lifespan_context(app):
        client_id, secret = await new_client(
            state_of(app, ServiceState).sessionmaker, ClientKind.AUTHORITY, jurisdiction="DE"
        )
        async with from_peer(app, random_peer()) as attacker:
            refused = [
                (await request_token(attacker, client_id, "guess")).status_code for _ in range(40)
            ]
        async with from_peer(app, random_peer()) as real:
            answers = [(await request_token(real, client_id, secret)).status_code for _ in range(9)]
    assert answers == [200] * 9
    assert refused[:5] == [401] * 5
    assert 429 in refused


async def test_an_attackers_failures_slow_only_the_attacker(
    http: httpx.AsyncClient, issuer_app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    client_id, secret = await new_client(sessionmaker, ClientKind.AUTHORITY, jurisdiction="FR")
    async with from_peer(issuer_app, random_peer()) as attacker:
        statuses = [(await request_token(attacker, client_id, "x")).status_code for _ in range(7)]
        late = await request_token(attacker, client_id, secret)
    assert statuses == [401] * 6 + [429]  # five free failures, then a wait after each
    assert late.status_code == 429  # the failing peer waits, even with the right secret
    assert int(late.headers["retry-after"]) >= 1
    assert late.json()["error"] == "temporarily_unavailable"
    assert (await request_token(http, client_id, secret)).status_code == 200


async def test_an_authenticated_client_over_its_rate_is_limited(
    database_url: str, engine: AsyncEngine
) -> None:
    app = create_app(issuer_settings(database_url, ISSUER_TOKEN_RATE=0.01, ISSUER_TOKEN_BURST=2))
    async with app.router.lifespan_context(app):
        client_id, secret = await new_client(
            state_of(app, ServiceState).sessionmaker, ClientKind.AUTHORITY, jurisdiction="FR"
        )
        statuses = []
        for _ in range(3):  # from three peers: the client's own bucket is what runs dry
            async with from_peer(app, random_peer()) as http:
                statuses.append((await request_token(http, client_id, secret)).status_code)
    assert statuses == [200, 200, 429]


async def post_sign_in(
    http: httpx.AsyncClient, params: dict[str, str], email: str, password: str, **headers: str
) -> httpx.Response:
    return await http.post(
        "/authorize", data={**params, "email": email, "password": password}, headers=headers
    )


async def test_wrong_passwords_do_not_lock_the_coordinator_out(
    issuer_app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Finding 4: after many wrong passwords from one peer, the right one works elsewhere."""
    account = await new_account(sessionmaker)
    params = authorization(account, Pkce.make())
    async with from_peer(issuer_app, random_peer()) as attacker:
        wrong = [
            (await post_sign_in(attacker, params, account.email, "guess")).status_code
            for _ in range(12)
        ]
        right_from_attacker = await post_sign_in(attacker, params, account.email, account.password)
    assert wrong[:5] == [200] * 5  # the form again, with an error
    assert 429 in wrong
    assert right_from_attacker.status_code == 429
    async with from_peer(issuer_app, random_peer()) as coordinator:
        answer = await post_sign_in(coordinator, params, account.email, account.password)
    assert answer.status_code == 302, answer.text
    assert "code=" in answer.headers["location"]


@asynccontextmanager
async def served(app: FastAPI, forwarded_allow_ips: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real uvicorn, configured as every service's __main__ configures it."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
        ws="none",
        http="h11",
        **proxy_options(forwarded_allow_ips),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def spoofed_wrong_sign_ins(http: httpx.AsyncClient, params: dict[str, str]) -> list[int]:
    statuses = []
    for _ in range(25):
        answer = await post_sign_in(
            http,
            params,
            f"nobody-{uuid.uuid4().hex[:8]}@caseshare.test",
            "guess",
            **{"x-forwarded-for": random_peer()},
        )
        statuses.append(answer.status_code)
    return statuses


async def test_a_spoofed_forwarded_for_does_not_dodge_the_peer_limit(
    database_url: str, engine: AsyncEngine
) -> None:
    """With no trusted proxy (the default), X-Forwarded-For is ignored: limits key on the peer."""
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        account = await new_account(state_of(app, ServiceState).sessionmaker)
        params = authorization(account, Pkce.make())
        async with served(app, "") as http:
            statuses = await spoofed_wrong_sign_ins(http, params)
    assert statuses[:21] == [200] * 21  # twenty free failures per peer, then waits
    assert statuses[21:] == [429] * 4


async def test_a_configured_proxy_is_believed(database_url: str, engine: AsyncEngine) -> None:
    """The control: a proxy in FORWARDED_ALLOW_IPS does name the client's address."""
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app):
        account = await new_account(state_of(app, ServiceState).sessionmaker)
        params = authorization(account, Pkce.make())
        async with served(app, "127.0.0.1") as http:
            statuses = await spoofed_wrong_sign_ins(http, params)
    assert statuses == [200] * 25


async def test_a_spoofed_forwarded_for_does_not_dodge_the_token_throttle(
    database_url: str, engine: AsyncEngine
) -> None:
    """Finding 3's spoofing half: wrong secrets under ever-new addresses still add up."""
    app = create_app(issuer_settings(database_url))
    async with app.router.lifespan_context(app), served(app, "") as http:
        statuses = []
        for _ in range(25):
            answer = await http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                auth=httpx.BasicAuth(f"nobody-{uuid.uuid4().hex[:8]}", "guess"),
                headers={"x-forwarded-for": random_peer()},
            )
            statuses.append(answer.status_code)
    assert statuses[:21] == [401] * 21
    assert statuses[21:] == [429] * 4
