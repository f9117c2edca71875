"""The admin API: reference-data changes are checked, audited with the change, or refused whole.

A change of a jurisdiction's status or public key takes two administrators: the first one's
PATCH proposes it (202), a second one's approval applies it. Changes are committed for real;
the jurisdiction these tests modify (Malta) is one no other test relies on, and each test puts
back what it changed.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.reference.models import Jurisdiction, Platform
from shared import sealing
from shared.db import transaction
from tests.registry_api import ADMIN, COORDINATOR, Registry, running, settings_for

pytestmark = pytest.mark.integration

ADMIN_CLIENT = "registry-admin-1"
SECOND_ADMIN = "registry-admin-2"
SUBJECT = "MT"
JURISDICTIONS = "/v1/registry/jurisdictions"


@pytest.fixture
async def registry(
    database_url: str, topic_prefix: str, engine: AsyncEngine
) -> AsyncIterator[Registry]:
    """The app over the migrated, seeded database (`engine` loads the reference data)."""
    async with running(settings_for(database_url, topic_prefix)) as reg:
        yield reg


@pytest.fixture
def auth(registry: Registry) -> dict[str, str]:
    return registry.issuer.auth(ADMIN, client_id=ADMIN_CLIENT)


@pytest.fixture
def second(registry: Registry) -> dict[str, str]:
    """Another administrator, who approves what the first proposes."""
    return registry.issuer.auth(ADMIN, client_id=SECOND_ADMIN)


async def approved(
    registry: Registry, proposal: httpx.Response, second: dict[str, str]
) -> httpx.Response:
    """The answer to a PATCH, or for a proposed change (202) the second admin's approval."""
    if proposal.status_code != 202:
        return proposal
    assert proposal.headers["location"] == f"/v1/registry/pending-changes/{proposal.json()['id']}"
    return await registry.client.post(proposal.headers["location"] + "/approve", headers=second)


@pytest.fixture
async def subject(
    registry: Registry,
    auth: dict[str, str],
    second: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[dict[str, Any]]:
    """Malta as it was before the test, restored through the API afterwards."""
    before = await snapshot(sessionmaker, SUBJECT)
    yield before
    restore = {"status": before["status"], "name": before["name"], "note": before["note"]}
    if before["public_jwk"] is not None:
        restore["public_jwk"] = before["public_jwk"]
    proposal = await registry.client.patch(path(SUBJECT), json=restore, headers=auth)
    assert (await approved(registry, proposal, second)).status_code == 200


def path(code: str) -> str:
    return f"{JURISDICTIONS}/{code}"


async def snapshot(sm: async_sessionmaker[AsyncSession], code: str) -> dict[str, Any]:
    async with transaction(sm) as session:
        row = await session.get(Jurisdiction, code)
        assert row is not None
        return {c: getattr(row, c) for c in ("name", "status", "note", "public_jwk", "updated_at")}


async def audit_tail(sm: async_sessionmaker[AsyncSession]) -> tuple[int, AuditEntry | None]:
    async with transaction(sm) as session:
        await audit.drain(session)
        count = await session.scalar(select(func.count()).select_from(AuditEntry))
        last = await session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
    if last is not None:  # the token's jti is tested in tests/integration/api; compare the change
        last.details = {k: v for k, v in last.details.items() if k != "token_id"}
    return count or 0, last


async def test_jurisdictions_are_listed_by_code_page_by_page(
    registry: Registry, auth: dict[str, str]
) -> None:
    first = (await registry.client.get(JURISDICTIONS, params={"limit": 5}, headers=auth)).json()
    codes = [j["code"] for j in first["items"]]
    assert codes == sorted(codes)
    assert first["next_cursor"] == codes[-1]
    params = {"limit": 100, "cursor": first["next_cursor"]}
    rest = (await registry.client.get(JURISDICTIONS, params=params, headers=auth)).json()
    assert rest["items"][0]["code"] > codes[-1]
    everyone = {j["code"]: j for j in first["items"] + rest["items"]}
    assert everyone["FR"]["status"] == "member"
    assert everyone["FR"]["public_jwk"]["kid"]
    assert "d" not in everyone["FR"]["public_jwk"]


async def test_a_status_change_is_audited_and_the_chain_still_verifies(
    registry: Registry,
    auth: dict[str, str],
    second: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    count, _ = await audit_tail(sessionmaker)
    proposal = await registry.client.patch(
        path(SUBJECT), json={"status": "suspended"}, headers=auth
    )
    assert proposal.status_code == 202
    answer = await approved(registry, proposal, second)
    assert answer.status_code == 200
    assert answer.json()["status"] == "suspended"
    assert (await snapshot(sessionmaker, SUBJECT))["status"] == "suspended"
    after, entry = await audit_tail(sessionmaker)
    assert after == count + 2  # the proposal, then the approval that applied it
    assert entry is not None
    assert (entry.actor, entry.action, entry.subject_id) == (
        SECOND_ADMIN,
        "jurisdiction.updated",
        SUBJECT,
    )
    assert entry.details == {
        "status": {"from": subject["status"], "to": "suspended"},
        "change_id": proposal.json()["id"],
        "proposed_by": ADMIN_CLIENT,
    }
    verified = await registry.client.get(
        "/v1/registry/audit/verify", headers=registry.issuer.auth(COORDINATOR)
    )
    assert verified.json()["ok"] is True
    assert verified.json()["checked"] >= after


async def test_registering_a_public_key_stores_its_normalised_public_form(
    registry: Registry,
    auth: dict[str, str],
    second: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    pair = sealing.generate_keypair(curve="X25519")
    offered = {**pair.public_jwk, "kid": "my-own-name"}
    proposal = await registry.client.patch(
        path(SUBJECT), json={"public_jwk": offered}, headers=auth
    )
    assert proposal.json()["public_jwk"] == pair.public_jwk  # what the approver is shown
    answer = await approved(registry, proposal, second)
    assert answer.status_code == 200
    stored = (await snapshot(sessionmaker, SUBJECT))["public_jwk"]
    assert stored == pair.public_jwk  # the kid is the thumbprint, not the caller's name
    _, entry = await audit_tail(sessionmaker)
    assert entry is not None
    old_kid = (subject["public_jwk"] or {}).get("kid")
    assert entry.details == {
        "public_key": {"from_kid": old_kid, "to_kid": pair.kid},
        "change_id": proposal.json()["id"],
        "proposed_by": ADMIN_CLIENT,
    }


async def test_one_admin_alone_cannot_change_a_status_or_key(
    registry: Registry,
    auth: dict[str, str],
    second: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    count, _ = await audit_tail(sessionmaker)
    pair = sealing.generate_keypair()
    body = {"status": "suspended", "public_jwk": pair.public_jwk}
    proposal = await registry.client.patch(path(SUBJECT), json=body, headers=auth)
    assert proposal.status_code == 202
    change = proposal.json()
    assert (change["state"], change["proposed_by"]) == ("pending", ADMIN_CLIENT)
    assert await snapshot(sessionmaker, SUBJECT) == subject  # proposed, nothing changed
    after, entry = await audit_tail(sessionmaker)
    assert after == count + 1
    assert entry is not None
    assert (entry.actor, entry.action) == (ADMIN_CLIENT, "jurisdiction.change_proposed")
    assert entry.details["change_id"] == change["id"]
    assert entry.details["public_key"]["to_kid"] == pair.kid
    listed = await registry.client.get("/v1/registry/pending-changes", headers=second)
    assert change["id"] in {c["id"] for c in listed.json()["items"]}

    approve = f"/v1/registry/pending-changes/{change['id']}/approve"
    own = await registry.client.post(approve, headers=auth)
    assert own.status_code == 403
    assert own.headers["content-type"] == "application/problem+json"
    assert await snapshot(sessionmaker, SUBJECT) == subject
    assert (await audit_tail(sessionmaker))[0] == count + 1

    applied = await registry.client.post(approve, headers=second)
    assert applied.status_code == 200
    now = await snapshot(sessionmaker, SUBJECT)
    assert (now["status"], now["public_jwk"]) == ("suspended", pair.public_jwk)
    after, entry = await audit_tail(sessionmaker)
    assert after == count + 2
    assert entry is not None
    assert (entry.actor, entry.action) == (SECOND_ADMIN, "jurisdiction.updated")
    assert (await registry.client.post(approve, headers=second)).status_code == 409
    unknown = "/v1/registry/pending-changes/00000000-0000-4000-8000-000000000000/approve"
    assert (await registry.client.post(unknown, headers=second)).status_code == 404


async def test_a_newer_proposal_supersedes_a_pending_one(
    registry: Registry,
    auth: dict[str, str],
    second: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first = await registry.client.patch(path(SUBJECT), json={"status": "suspended"}, headers=auth)
    newer = await registry.client.patch(path(SUBJECT), json={"status": "partner"}, headers=second)
    assert (first.status_code, newer.status_code) == (202, 202)
    stale = await registry.client.post(first.headers["location"] + "/approve", headers=second)
    assert stale.status_code == 409
    assert (await approved(registry, newer, auth)).json()["status"] == "partner"


def bad_keys() -> list[Any]:
    pair = sealing.generate_keypair()
    return [
        pair.private_jwk,
        OctKey.generate_key(256).as_dict(),
        ECKey.generate_key("P-384").as_dict(private=False),
        RSAKey.generate_key(2048).as_dict(private=False),
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {},
    ]


@pytest.mark.parametrize("jwk", bad_keys())
async def test_a_bad_key_is_422_and_changes_nothing(
    registry: Registry,
    auth: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    jwk: dict[str, Any],
) -> None:
    count, _ = await audit_tail(sessionmaker)
    body = {"status": "suspended", "public_jwk": jwk}
    answer = await registry.client.patch(path(SUBJECT), json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "public_jwk" in answer.json()["detail"]
    assert await snapshot(sessionmaker, SUBJECT) == subject
    assert (await audit_tail(sessionmaker))[0] == count


@pytest.mark.parametrize(
    "body",
    [{}, {"colour": "red"}, {"status": None}, {"status": "emperor"}, {"name": ""}, []],
)
async def test_malformed_patches_are_422_and_change_nothing(
    registry: Registry,
    auth: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    body: Any,
) -> None:
    count, _ = await audit_tail(sessionmaker)
    answer = await registry.client.patch(path(SUBJECT), json=body, headers=auth)
    assert answer.status_code == 422
    assert await snapshot(sessionmaker, SUBJECT) == subject
    assert (await audit_tail(sessionmaker))[0] == count


async def test_another_jurisdictions_key_is_a_conflict(
    registry: Registry,
    auth: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    france = (await snapshot(sessionmaker, "FR"))["public_jwk"]
    answer = await registry.client.patch(path(SUBJECT), json={"public_jwk": france}, headers=auth)
    assert answer.status_code == 409
    assert await snapshot(sessionmaker, SUBJECT) == subject


async def test_notes_are_audited_without_their_text(
    registry: Registry,
    auth: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    note = "contact desk " + secrets.token_hex(4)
    assert (
        await registry.client.patch(path(SUBJECT), json={"note": note}, headers=auth)
    ).is_success
    _, entry = await audit_tail(sessionmaker)
    assert entry is not None
    assert entry.details == {"note": "changed"}
    cleared = await registry.client.patch(path(SUBJECT), json={"note": None}, headers=auth)
    assert cleared.json()["note"] is None


async def test_a_patch_that_changes_nothing_writes_no_audit_entry(
    registry: Registry,
    auth: dict[str, str],
    subject: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    count, _ = await audit_tail(sessionmaker)
    body = {"name": subject["name"], "status": subject["status"]}
    assert (await registry.client.patch(path(SUBJECT), json=body, headers=auth)).is_success
    assert (await audit_tail(sessionmaker))[0] == count


async def test_unknown_or_malformed_codes(registry: Registry, auth: dict[str, str]) -> None:
    missing = await registry.client.patch(path("ZZ"), json={"status": "member"}, headers=auth)
    assert missing.status_code == 404
    malformed = await registry.client.patch(path("fr"), json={"status": "member"}, headers=auth)
    assert malformed.status_code == 422


def platform_body(**overrides: str) -> dict[str, str]:
    slug = "p-" + secrets.token_hex(6)
    return {"slug": slug, "name": f"Platform {slug}", "legal_rep_jurisdiction": "IE", **overrides}


async def platform_row(sm: async_sessionmaker[AsyncSession], slug: str) -> Platform | None:
    async with transaction(sm) as session:
        return await session.get(Platform, slug)


async def test_registering_a_platform_is_audited_and_replayable(
    registry: Registry, auth: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    count, _ = await audit_tail(sessionmaker)
    body = platform_body()
    headers = {**auth, "Idempotency-Key": secrets.token_hex(8)}
    created = await registry.client.post("/v1/registry/platforms", json=body, headers=headers)
    assert created.status_code == 201
    assert created.headers["location"] == f"/v1/registry/platforms/{body['slug']}"
    replayed = await registry.client.post("/v1/registry/platforms", json=body, headers=headers)
    assert (replayed.status_code, replayed.json()) == (201, created.json())
    assert replayed.headers["idempotent-replayed"] == "true"
    after, entry = await audit_tail(sessionmaker)
    assert after == count + 1
    assert entry is not None
    assert (entry.actor, entry.action, entry.subject_id) == (
        ADMIN_CLIENT,
        "platform.registered",
        body["slug"],
    )
    again = await registry.client.post("/v1/registry/platforms", json=body, headers=auth)
    assert again.status_code == 409
    listed = await registry.client.get(
        "/v1/registry/platforms", params={"limit": 100}, headers=auth
    )
    assert body["slug"] in {p["slug"] for p in listed.json()["items"]}


@pytest.mark.parametrize(
    "overrides",
    [
        {"legal_rep_jurisdiction": "ZZ"},
        {"slug": "Not A Slug"},
        {"legal_rep_jurisdiction": "ireland"},
        {"extra": "field"},
    ],
)
async def test_bad_platforms_are_refused_and_not_created(
    registry: Registry,
    auth: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    overrides: dict[str, str],
) -> None:
    body = platform_body(**overrides)
    count, _ = await audit_tail(sessionmaker)
    answer = await registry.client.post("/v1/registry/platforms", json=body, headers=auth)
    assert answer.status_code == 422
    assert await platform_row(sessionmaker, body["slug"]) is None
    assert (await audit_tail(sessionmaker))[0] == count


async def test_updating_a_platform(
    registry: Registry, auth: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = platform_body()
    await registry.client.post("/v1/registry/platforms", json=body, headers=auth)
    where = f"/v1/registry/platforms/{body['slug']}"
    refused = await registry.client.patch(
        where, json={"name": "Renamed", "legal_rep_jurisdiction": "ZZ"}, headers=auth
    )
    assert refused.status_code == 422
    unchanged = await platform_row(sessionmaker, body["slug"])
    assert unchanged is not None
    assert unchanged.name == body["name"]
    changed = await registry.client.patch(
        where, json={"name": "Renamed", "legal_rep_jurisdiction": "NL"}, headers=auth
    )
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["legal_rep_jurisdiction"]) == ("Renamed", "NL")
    _, entry = await audit_tail(sessionmaker)
    assert entry is not None
    assert entry.action == "platform.updated"
    assert entry.details == {
        "name": {"from": body["name"], "to": "Renamed"},
        "legal_rep_jurisdiction": {"from": "IE", "to": "NL"},
    }
    for bad in ({"name": None}, {}, {"slug": "other"}):
        assert (await registry.client.patch(where, json=bad, headers=auth)).status_code == 422
    missing = await registry.client.patch(
        "/v1/registry/platforms/no-such-platform", json={"name": "X"}, headers=auth
    )
    assert missing.status_code == 404
