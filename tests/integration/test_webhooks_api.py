"""Webhook endpoints over HTTP: an authority registers its own (secret shown once, sealed at
rest), nobody else sees or deletes them (404), bad input is a 422 problem that changes
nothing, and nothing is called until an admin approves on the registry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.webhooks import service as webhooks
from services.registry.webhooks.models import WebhookEndpoint
from services.router.metrics import RouterMetrics
from shared.db import transaction
from shared.keywrap import KeyEncryptionSettings
from tests import intake_api, registry_api
from tests.registry_api import ADMIN, COORDINATOR
from tests.webhook_receiver import delete_every_endpoint

pytestmark = pytest.mark.integration
PATH = "/v1/webhooks/endpoints"
PROBLEM = "application/problem+json"


@pytest.fixture
async def intake(database_url: str, topic_prefix: str) -> AsyncIterator[intake_api.Intake]:
    settings = intake_api.settings_for(
        database_url, topic_prefix, WEBHOOKS_ALLOW_INSECURE_LOOPBACK=True
    )
    async with intake_api.running(settings) as running:
        yield running


@pytest.fixture
async def registry(database_url: str, topic_prefix: str) -> AsyncIterator[registry_api.Registry]:
    async with registry_api.running(registry_api.settings_for(database_url, topic_prefix)) as r:
        yield r


@pytest.fixture(autouse=True)
async def cleanup(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    await delete_every_endpoint(sessionmaker)  # and what another module left behind
    yield
    await delete_every_endpoint(sessionmaker)


async def register(
    intake: intake_api.Intake,
    code: str,
    url: str = "https://hooks.example.eu/caseshare",
    **extra: Any,
) -> httpx.Response:
    return await intake.client.post(
        PATH, json={"url": url}, headers=intake.authority(code), **extra
    )


async def count(sm: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sm) as s:
        return int(await s.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0)


async def test_registration_shows_the_secret_once_and_keeps_it_sealed(
    intake: intake_api.Intake, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(intake, "FR")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "pending_approval"
    assert body["secret"].startswith("whsec_")
    location = created.headers["Location"]
    assert location == f"{PATH}/{body['id']}"

    shown = await intake.client.get(location, headers=intake.authority("FR"))
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    listed = await intake.client.get(PATH, headers=intake.authority("FR"))
    assert [e["id"] for e in listed.json()] == [body["id"]]
    assert body["secret"] not in listed.text

    async with transaction(sessionmaker) as s:
        row = await s.get(WebhookEndpoint, uuid.UUID(body["id"]))
        assert row is not None
        secret = body["secret"].removeprefix("whsec_")
        assert secret not in row.sealed_secret
        ring = KeyEncryptionSettings().key_ring(intake_api.settings_for("x", "x").state_dir)
        assert webhooks.open_secret(ring, row.id, row.sealed_secret) == body["secret"]


async def test_a_retry_with_the_same_idempotency_key_replays_the_registration(
    intake: intake_api.Intake, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}
    first = await intake.client.post(
        PATH, json={"url": "https://a.example.eu/h"}, headers={**intake.authority("FR"), **key}
    )
    again = await intake.client.post(
        PATH, json={"url": "https://a.example.eu/h"}, headers={**intake.authority("FR"), **key}
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    before = await count(sessionmaker)
    other = await intake.client.post(
        PATH, json={"url": "https://b.example.eu/h"}, headers={**intake.authority("FR"), **key}
    )
    assert other.status_code == 422
    assert await count(sessionmaker) == before


async def test_another_jurisdiction_gets_404_and_cannot_delete(
    intake: intake_api.Intake, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mine = (await register(intake, "FR")).json()["id"]
    de = intake.authority("DE")
    for method, path in (("GET", mine), ("GET", f"{mine}/attempts"), ("DELETE", mine)):
        refused = await intake.client.request(method, f"{PATH}/{path}", headers=de)
        assert refused.status_code == 404, (method, path)
        assert refused.headers["content-type"].startswith(PROBLEM)
    log = await intake.client.get(f"{PATH}/{mine}/attempts", headers=intake.authority("FR"))
    assert (log.status_code, log.json()) == (200, [])
    assert (await intake.client.get(PATH, headers=de)).json() == []
    still = await intake.client.get(f"{PATH}/{mine}", headers=intake.authority("FR"))
    assert still.json()["state"] == "pending_approval"

    deleted = await intake.client.delete(f"{PATH}/{mine}", headers=intake.authority("FR"))
    assert deleted.status_code == 204
    gone = await intake.client.get(f"{PATH}/{mine}", headers=intake.authority("FR"))
    assert gone.status_code == 404
    platform = await intake.client.get(PATH, headers=intake.platform("telegram"))
    assert platform.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://hooks.example.eu/plain"},  # not https, not loopback
        {"url": "ftp://hooks.example.eu/x"},
        {"url": "https://user:pw@hooks.example.eu/x"},
        {"url": "https:///no-host"},
        {"url": "https://hooks.example.eu/x", "description": "nul\u0000"},
        {"url": "https://hooks.example.eu/x", "extra": True},
        {"url": "https://hooks.example.eu/\u0000"},
        {},
    ],
)
async def test_bad_input_is_a_422_problem_and_changes_nothing(
    intake: intake_api.Intake, sessionmaker: async_sessionmaker[AsyncSession], body: dict[str, Any]
) -> None:
    before = await count(sessionmaker)
    refused = await intake.client.post(PATH, json=body, headers=intake.authority("FR"))
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert await count(sessionmaker) == before


async def test_plain_http_to_loopback_needs_the_setting(
    database_url: str, topic_prefix: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = intake_api.settings_for(database_url, topic_prefix)
    async with intake_api.running(settings) as strict:
        refused = await register(strict, "FR", "http://127.0.0.1:9/hook")
    assert refused.status_code == 422
    assert "https" in refused.json()["detail"]


async def test_an_admin_approves_and_nobody_else_can(
    intake: intake_api.Intake, registry: registry_api.Registry
) -> None:
    endpoint_id = (await register(intake, "FR")).json()["id"]
    approve = f"/v1/registry/webhooks/endpoints/{endpoint_id}/approve"
    coordinator = await registry.client.post(approve, headers=registry.issuer.auth(COORDINATOR))
    assert coordinator.status_code == 403
    pending = await registry.client.get(
        "/v1/registry/webhooks/endpoints",
        params={"state": "pending_approval"},
        headers=registry.issuer.auth(ADMIN),
    )
    assert endpoint_id in [e["id"] for e in pending.json()]

    admin = registry.issuer.auth(ADMIN, client_id="admin")
    approved = await registry.client.post(approve, headers=admin)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active"
    again = await registry.client.post(approve, headers=admin)
    assert again.status_code == 409
    unknown = await registry.client.post(
        f"/v1/registry/webhooks/endpoints/{uuid.uuid4()}/approve", headers=admin
    )
    assert unknown.status_code == 404
    owner = await intake.client.get(f"{PATH}/{endpoint_id}", headers=intake.authority("FR"))
    assert owner.json()["state"] == "active"


async def test_a_jurisdiction_holds_a_bounded_number_of_endpoints(
    intake: intake_api.Intake,
) -> None:
    statuses = [(await register(intake, "PT")).status_code for _ in range(6)]
    assert statuses == [201] * 5 + [409]


def test_the_gauge_reports_every_state() -> None:
    metrics = RouterMetrics()
    metrics.set_webhook_endpoints({"active": 2, "disabled": 1})
    sample = metrics.registry.get_sample_value
    assert sample("caseshare_webhook_endpoints", {"state": "disabled"}) == 1
    assert sample("caseshare_webhook_endpoints", {"state": "active"}) == 2
