"""Release decisions leave signed evidence: released, withheld by the originator, or lapsed.

Each record is written in the decision's transaction, links the decision's audit entry, and
is served to the originator alone (`GET /v1/releases/{id}/evidence`); the recipient's and the
platform's bundles do not change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.releases import service as releases
from services.registry.releases.service import release_id
from shared import audit_chain
from shared import evidence as signing
from shared.db import transaction
from tests.integration.api.conftest import TOPIC_PREFIX
from tests.integration.api.evidence_scene import deliver, release_held
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration


async def _jwks(intake: httpx.AsyncClient) -> dict[str, Any]:
    jwks: dict[str, Any] = (await intake.get("/.well-known/evidence-jwks.json")).json()
    return jwks


async def _bundle(intake: httpx.AsyncClient, mint: TokenMint, url: str) -> dict[str, Any]:
    answer = await intake.get(url, headers=bearer(mint.authority("FR")))
    assert answer.status_code == 200, answer.text
    bundle: dict[str, Any] = answer.json()
    return bundle


async def test_a_release_leaves_verifying_evidence_for_the_originator_alone(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker, release=False)
    de = scene.deliveries["DE"]
    url = f"/v1/releases/{release_id(de)}/evidence"
    assert (await _bundle(intake, mint, url))["records"] == []  # held: nothing decided yet
    # While held, the recipient cannot tell the delivery exists, evidence included.
    held = await intake.get(f"/v1/inbox/{de}/evidence", headers=bearer(mint.authority("DE")))
    assert held.status_code == 404
    await release_held(intake, mint, sessionmaker, de)

    bundle = await _bundle(intake, mint, url)
    jwks = await _jwks(intake)
    [claim] = signing.verify_bundle(bundle, jwks)
    assert claim["kind"] == "release.released"
    assert claim["subject_id"] == str(release_id(de))
    details = claim["details"]
    assert (details["recipient"], details["state"], details["basis"]) == (
        "DE",
        "released",
        "originator_decision",
    )
    assert details["delivery_id"] == str(de)
    # The record names the decision's own audit entry.
    async with transaction(sessionmaker) as session:
        await audit.drain(session)
        entries = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.subject_id == str(de), AuditEntry.action == "release.released"
                )
            )
        ).scalars()
        digests = {
            audit_chain.content_digest(
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject_type=e.subject_type,
                subject_id=e.subject_id,
                details=e.details,
            )
            for e in entries
        }
        assert claim["audit_digest"] in digests
    # Borrowed for another release, it no longer verifies.
    with pytest.raises(signing.VerificationFailed):
        signing.verify_bundle(
            {**bundle, "subject": f"release:{release_id(scene.deliveries['FR'])}"}, jwks
        )
    # The recipient, another authority and an unknown release see nothing.
    for code in ("DE", "BE"):
        other = await intake.get(url, headers=bearer(mint.authority(code)))
        assert other.status_code == 404
    unknown = f"/v1/releases/{release_id(scene.response_id)}/evidence"
    assert (await intake.get(unknown, headers=bearer(mint.authority("FR")))).status_code == 404
    # The recipient's own bundle is as before: relayed, nothing about FR's decision.
    mine = await intake.get(f"/v1/inbox/{de}/evidence", headers=bearer(mint.authority("DE")))
    assert [r["kind"] for r in mine.json()["records"]] == ["delivery.relayed"]


async def test_withholding_and_lapsing_are_proven_as_withheld(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    withheld = await deliver(intake, mint, sessionmaker, release=False)
    rid = release_id(withheld.deliveries["DE"])
    reason = "proceedings not yet authorised"
    decided = await intake.post(
        f"/v1/releases/{rid}",
        headers=bearer(mint.authority("FR")),
        json={"decision": "withhold", "reason": reason},
    )
    assert decided.status_code == 200, decided.text
    bundle = await _bundle(intake, mint, f"/v1/releases/{rid}/evidence")
    [claim] = signing.verify_bundle(bundle, await _jwks(intake))
    assert (claim["kind"], claim["details"]["state"]) == ("release.withheld", "withheld")
    assert reason not in str(bundle)  # free text stays with the exclusion
    never = f"/v1/inbox/{withheld.deliveries['DE']}/evidence"
    assert (await intake.get(never, headers=bearer(mint.authority("DE")))).status_code == 404

    lapsing = await deliver(intake, mint, sessionmaker, release=False)
    rid = release_id(lapsing.deliveries["DE"])
    async with transaction(sessionmaker) as session:  # the clock: past the lapse
        later = datetime.now(UTC) + timedelta(days=400)
        assert await releases.lapse_due(session, now=later, prefix=TOPIC_PREFIX) >= 1
    bundle = await _bundle(intake, mint, f"/v1/releases/{rid}/evidence")
    [claim] = signing.verify_bundle(bundle, await _jwks(intake))
    assert claim["kind"] == "release.withheld"
    assert (claim["details"]["state"], claim["details"]["basis"]) == (
        "lapsed",
        "not_decided_in_time",
    )
