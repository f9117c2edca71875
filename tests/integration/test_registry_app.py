"""The registry process as a whole: health, authentication, scopes, page limits, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from caseshare.stack.embedded import EmbeddedTansu, free_port
from tests.registry_api import ADMIN, COORDINATOR, ISSUER, Registry, running, settings_for

pytestmark = pytest.mark.integration

COORDINATOR_GETS = [
    "/v1/registry/case-map",
    "/v1/registry/cases",
    "/v1/registry/responses",
    "/v1/registry/cases/00000000-0000-4000-8000-000000000000",
    "/v1/registry/responses/00000000-0000-4000-8000-000000000000/fanout",
    "/v1/registry/stream",
]
ADMIN_GETS = ["/v1/registry/jurisdictions", "/v1/registry/platforms"]
LISTS = ["/v1/registry/cases", "/v1/registry/responses", *ADMIN_GETS]


@pytest.fixture
async def registry(
    database_url: str, topic_prefix: str, broker: EmbeddedTansu, engine: AsyncEngine
) -> AsyncIterator[Registry]:
    """The app over the migrated, seeded database (`engine` loads the reference data)."""
    settings = settings_for(database_url, topic_prefix, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
    async with running(settings) as reg:
        yield reg


async def test_health_and_readiness(registry: Registry) -> None:
    assert (await registry.client.get("/healthz")).json() == {"status": "ok"}
    ready = await registry.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_readiness_reports_an_unreachable_broker(
    database_url: str, topic_prefix: str
) -> None:
    settings = settings_for(
        database_url, topic_prefix, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}"
    )
    async with running(settings) as reg:
        ready = await reg.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("unavailable")


@pytest.mark.parametrize("path", [*COORDINATOR_GETS, *ADMIN_GETS, "/v1/registry/audit/verify"])
async def test_no_token_is_401(registry: Registry, path: str) -> None:
    answer = await registry.client.get(path)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_forged_token_is_401(registry: Registry) -> None:
    token = registry.issuer.token(COORDINATOR)
    header, payload, _ = token.split(".")
    answer = await registry.client.get(
        "/v1/registry/cases", headers={"Authorization": f"Bearer {header}.{payload}.AAAA"}
    )
    assert answer.status_code == 401


@pytest.mark.parametrize("path", COORDINATOR_GETS)
async def test_coordinator_routes_need_fanout_read(registry: Registry, path: str) -> None:
    answer = await registry.client.get(path, headers=registry.issuer.auth(ADMIN, "cases:read"))
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="fanout:read"' in challenge


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_admin_routes_need_registry_admin(registry: Registry, path: str) -> None:
    answer = await registry.client.get(path, headers=registry.issuer.auth(COORDINATOR))
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_admin_writes_need_registry_admin(registry: Registry) -> None:
    auth = registry.issuer.auth(COORDINATOR)
    patch = await registry.client.patch(
        "/v1/registry/jurisdictions/FR", json={"status": "suspended"}, headers=auth
    )
    post = await registry.client.post(
        "/v1/registry/platforms",
        json={"slug": "nope", "name": "Nope", "legal_rep_jurisdiction": "FR"},
        headers=auth,
    )
    assert (patch.status_code, post.status_code) == (403, 403)


@pytest.mark.parametrize("path", LISTS)
async def test_page_size_is_capped_at_100(registry: Registry, path: str) -> None:
    auth = registry.issuer.auth(COORDINATOR, ADMIN)
    too_big = await registry.client.get(path, params={"limit": 101}, headers=auth)
    assert too_big.status_code == 422
    assert too_big.headers["content-type"] == "application/problem+json"
    assert too_big.json()["errors"][0]["loc"] == ["query", "limit"]
    assert (await registry.client.get(path, params={"limit": 100}, headers=auth)).is_success


@pytest.mark.parametrize("scopes", [(COORDINATOR,), (ADMIN,)])
async def test_audit_verify_accepts_either_scope(
    registry: Registry, scopes: tuple[str, ...]
) -> None:
    answer = await registry.client.get(
        "/v1/registry/audit/verify", headers=registry.issuer.auth(*scopes)
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    assert body["first_broken_seq"] is None
    assert body["problem"] is None
    assert body["checked"] >= 0


async def test_audit_verify_refuses_other_scopes(registry: Registry) -> None:
    answer = await registry.client.get(
        "/v1/registry/audit/verify", headers=registry.issuer.auth("cases:read", "inbox:read")
    )
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_openapi_shows_scopes_and_the_token_endpoint(registry: Registry) -> None:
    schema = (await registry.client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2ClientCredentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{ISSUER}/token"
    paths = schema["paths"]
    assert paths["/v1/registry/cases"]["get"]["security"] == [
        {"OAuth2ClientCredentials": ["fanout:read"]}
    ]
    assert paths["/v1/registry/platforms"]["post"]["security"] == [
        {"OAuth2ClientCredentials": ["registry:admin"]}
    ]
    assert paths["/v1/registry/audit/verify"]["get"]["security"] == [
        {"OAuth2ClientCredentials": ["fanout:read"]},
        {"OAuth2ClientCredentials": ["registry:admin"]},
    ]


async def test_docs_can_be_turned_off(database_url: str, topic_prefix: str) -> None:
    settings = settings_for(database_url, topic_prefix, REGISTRY_DOCS_ENABLED=False)
    async with running(settings) as reg:
        assert (await reg.client.get("/openapi.json")).status_code == 404
        assert (await reg.client.get("/docs")).status_code == 404


async def test_the_registry_serves_the_event_contracts(registry: Registry) -> None:
    """Integrators fetch the AsyncAPI document and each event's schema before holding a token."""
    answer = await registry.client.get("/asyncapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["asyncapi"].startswith("3.")
    assert any(".inbox." in channel["address"] for channel in doc["channels"].values())
    schema = await registry.client.get("/schemas/eu.caseshare.delivery.published.v1.json")
    assert schema.status_code == 200
    assert schema.headers["content-type"] == "application/schema+json"
    missing = await registry.client.get("/schemas/no.such.event.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
