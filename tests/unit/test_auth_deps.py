"""The FastAPI auth dependencies: 401 and 403 as problem+json, scopes in the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Request

from shared.auth import (
    Principal,
    Scope,
    document_token_url,
    require,
)
from shared.errors import Unauthorized
from shared.problems import install_problem_handlers
from shared.ratelimit import RateLimiter
from shared.state import ApiState, install


def principal(
    *scopes: str, jurisdiction: str | None = "FR", platform: str | None = None
) -> Principal:
    return Principal(
        subject="client",
        client_id="client",
        scopes=frozenset(scopes),
        jurisdiction=jurisdiction,
        platform=platform,
        token_id="jti",
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


class StubValidator:
    """Stands in for TokenValidator: known tokens map to principals, anything else is refused."""

    def __init__(self, tokens: dict[str, Principal]) -> None:
        self.tokens = tokens

    async def validate(self, token: str) -> Principal:
        if token not in self.tokens:
            raise Unauthorized("The access token is not valid")
        return self.tokens[token]


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    state = ApiState(
        write_limiter=RateLimiter(rate=1, burst=1), read_limiter=RateLimiter(rate=1, burst=1)
    )
    install(app, state)
    state.token_validator = StubValidator(  # type: ignore[assignment]
        {
            "reader": principal(Scope.CASES_READ),
            "writer": principal(Scope.CASES_WRITE, Scope.CASES_READ),
            "platform": principal(Scope.CASES_READ, jurisdiction=None, platform="chatapp"),
        }
    )

    @app.get("/cases")
    async def list_cases(
        caller: Annotated[Principal, require(Scope.CASES_READ)], request: Request
    ) -> dict[str, str]:
        assert request.state.principal is caller
        return {"client_id": caller.client_id}

    @app.post("/cases")
    async def create_case(
        caller: Annotated[Principal, require(Scope.CASES_WRITE)],
    ) -> dict[str, str | None]:
        return {"jurisdiction": caller.jurisdiction}

    document_token_url(app, "https://issuer.example/token")
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic cmVhZGVyOng="}],
    ids=["missing", "garbage", "not-bearer"],
)
async def test_no_valid_token_is_a_401_problem(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/cases", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["status"] == 401


async def test_a_missing_scope_is_a_403_insufficient_scope(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases", headers={"Authorization": "Bearer reader"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="cases:write"' in challenge


async def test_the_granted_scope_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/cases", headers={"Authorization": "bearer reader"})
    assert response.status_code == 200
    assert response.json() == {"client_id": "client"}


async def test_openapi_shows_the_client_credentials_flow_and_scopes(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2ClientCredentials"]
    flow = scheme["flows"]["clientCredentials"]
    assert scheme["type"] == "oauth2"
    assert flow["tokenUrl"] == "https://issuer.example/token"
    assert set(flow["scopes"]) == {str(scope) for scope in Scope}
    get_cases = schema["paths"]["/cases"]["get"]["security"]
    assert get_cases == [{"OAuth2ClientCredentials": ["cases:read"]}]
    post_cases = schema["paths"]["/cases"]["post"]["security"]
    assert post_cases == [{"OAuth2ClientCredentials": ["cases:write"]}]
