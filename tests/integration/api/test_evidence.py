"""Signed evidence over HTTP: the sender's view, bundles that verify offline, and that
changing any byte of any record makes verification fail."""

from __future__ import annotations

import copy
import json
import string
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from caseshare.cli import app as cli_app
from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.evidence import keys
from shared import audit_chain
from shared import evidence as signing
from shared.db import transaction
from tests import factories
from tests.integration.api.evidence_scene import deliver
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

B64 = string.ascii_letters + string.digits + "-_"


async def _jwks(intake: httpx.AsyncClient) -> dict[str, Any]:
    answer = await intake.get("/.well-known/evidence-jwks.json")
    assert answer.status_code == 200
    jwks: dict[str, Any] = answer.json()
    return jwks


async def test_the_platform_sees_progress_and_its_bundle_verifies(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    ack = await intake.post(
        f"/v1/inbox/{scene.deliveries['FR']}/ack", headers=bearer(mint.authority("FR"))
    )
    assert ack.status_code == 200
    as_platform = bearer(mint.platform("telegram"))

    status = await intake.get(f"/v1/responses/{scene.response_id}", headers=as_platform)
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["fanout_state"] == "routed"
    # FR opened the requesting case the platform named; DE matched a selector only.
    assert [(r["jurisdiction"], r["state"]) for r in body["recipients"]] == [("FR", "acknowledged")]
    assert body["other_recipients"] == {"published": 1}
    assert '"DE"' not in status.text
    assert str(scene.deliveries["DE"]) not in status.text

    bundle = (
        await intake.get(f"/v1/responses/{scene.response_id}/evidence", headers=as_platform)
    ).json()
    claims = signing.verify_bundle(bundle, await _jwks(intake))
    assert [c["kind"] for c in claims] == [
        "submission.accepted",
        "delivery.relayed",
        "delivery.retrieved",
    ]
    assert str(scene.deliveries["DE"]) not in json.dumps(bundle)

    # Each record names a queued audit entry; once chained, its content hashes to the digest.
    async with transaction(sessionmaker) as session:
        await audit.drain(session)
        for claim in claims:
            entries = (
                await session.execute(
                    AuditEntry.__table__.select().where(
                        AuditEntry.subject_id == claim["subject_id"]
                    )
                )
            ).all()
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
        assert (await audit.verify(session)).ok

    # Another platform, and an authority, cannot see the response at all.
    other = await intake.get(
        f"/v1/responses/{scene.response_id}", headers=bearer(mint.platform("chirp"))
    )
    assert other.status_code == 404
    other = await intake.get(
        f"/v1/responses/{scene.response_id}/evidence", headers=bearer(mint.platform("chirp"))
    )
    assert other.status_code == 404


async def test_changing_any_byte_of_any_record_fails_verification(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    await intake.post(
        f"/v1/inbox/{scene.deliveries['DE']}/ack", headers=bearer(mint.authority("DE"))
    )
    bundle = (
        await intake.get(
            f"/v1/inbox/{scene.deliveries['DE']}/evidence", headers=bearer(mint.authority("DE"))
        )
    ).json()
    jwks = await _jwks(intake)
    assert [c["kind"] for c in signing.verify_bundle(bundle, jwks)] == [
        "delivery.relayed",
        "delivery.retrieved",
    ]
    tried = 0
    for index, record in enumerate(bundle["records"]):
        for name, value in record.items():
            for position in range(len(value)):
                damaged = copy.deepcopy(bundle)
                original = value[position]
                swap = B64[(B64.index(original) + 1) % len(B64)] if original in B64 else "A"
                damaged["records"][index][name] = value[:position] + swap + value[position + 1 :]
                with pytest.raises(signing.VerificationFailed):
                    signing.verify_bundle(damaged, jwks)
                tried += 1
    assert tried > 1000
    # Dropping the subject or a record's field, or borrowing a record from elsewhere, fails too.
    with pytest.raises(signing.VerificationFailed):
        signing.verify_bundle(
            {**bundle, "subject": "delivery:" + str(scene.deliveries["FR"])}, jwks
        )
    # FR cannot read DE's evidence.
    foreign = await intake.get(
        f"/v1/inbox/{scene.deliveries['DE']}/evidence", headers=bearer(mint.authority("FR"))
    )
    assert foreign.status_code == 404


async def test_rotation_keeps_old_records_verifiable_and_signs_with_the_new_key(
    intake: httpx.AsyncClient,
    registry: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    before = await deliver(intake, mint, sessionmaker)
    as_platform = bearer(mint.platform("telegram"))
    url = f"/v1/responses/{before.response_id}/evidence"
    old_bundle = (await intake.get(url, headers=as_platform)).json()
    async with transaction(sessionmaker) as session:
        old_kid = (await keys.active_signer(session)).kid
        new_kid = await keys.rotate(session)
    assert new_kid != old_kid
    after = await deliver(intake, mint, sessionmaker)
    jwks = await _jwks(intake)
    assert [k["kid"] for k in jwks["keys"]][:2] == [new_kid, old_kid]
    assert all("d" not in k for k in jwks["keys"])
    assert (await registry.get("/.well-known/evidence-jwks.json")).json() == jwks
    signing.verify_bundle(old_bundle, jwks)
    new_bundle = (
        await intake.get(f"/v1/responses/{after.response_id}/evidence", headers=as_platform)
    ).json()
    signing.verify_bundle(new_bundle, jwks)
    kids = {
        json.loads(signing._unb64(r["jws"].split(".")[0]))["kid"] for r in new_bundle["records"]
    }
    assert kids == {new_kid}
    # Without the old key, the old bundle no longer verifies: the kid really is checked.
    with pytest.raises(signing.VerificationFailed):
        signing.verify_bundle(
            old_bundle, {"keys": [k for k in jwks["keys"] if k["kid"] != old_kid]}
        )


async def test_caseshare_evidence_verify_checks_a_saved_bundle_offline(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    bundle = (
        await intake.get(
            f"/v1/responses/{scene.response_id}/evidence", headers=bearer(mint.platform("telegram"))
        )
    ).json()
    (tmp_path / "jwks.json").write_text(json.dumps(await _jwks(intake)))
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    args = [
        "evidence",
        "verify",
        str(tmp_path / "bundle.json"),
        "--jwks",
        str(tmp_path / "jwks.json"),
    ]
    ok = CliRunner().invoke(cli_app, args)
    assert ok.exit_code == 0, ok.output
    assert "record(s) verified" in ok.output
    record = bundle["records"][0]
    record["jws"] = record["jws"][:-2] + ("AA" if not record["jws"].endswith("AA") else "BB")
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    bad = CliRunner().invoke(cli_app, args)
    assert bad.exit_code == 1
    assert "NOT verified" in bad.output


async def test_a_refused_submission_leaves_signed_evidence_for_its_platform(
    intake: httpx.AsyncClient, mint: TokenMint
) -> None:
    as_platform = bearer(mint.platform("telegram"))
    unknown_case = factories.response(case_ids=[uuid.uuid4()]).model_dump(mode="json")
    refused = await intake.post("/v1/responses", headers=as_platform, json=unknown_case)
    assert refused.status_code == 422
    link = refused.json()["evidence"]
    bundle = (await intake.get(link, headers=as_platform)).json()
    claims = signing.verify_bundle(bundle, await _jwks(intake))
    assert [(c["kind"], c["details"]["platform"]) for c in claims] == [
        ("submission.rejected", "telegram")
    ]
    assert (await intake.get(link, headers=bearer(mint.platform("chirp")))).status_code == 404
