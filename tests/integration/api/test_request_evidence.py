"""The authority's side of evidence: a legal request's steps (sent, answered) are signed in
their own transactions and served to the issuing authority alone."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shared import evidence as signing
from tests import factories
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration


async def test_the_issuing_authority_gets_verifying_evidence_of_sent_and_answered(
    intake: httpx.AsyncClient, mint: TokenMint
) -> None:
    fr = bearer(mint.authority("FR"))
    sel = factories.selector()
    case = factories.case(selectors=[sel], platform="telegram").model_dump(mode="json")
    opened = await intake.post("/v1/cases", headers=fr, json=case)
    assert opened.status_code == 201, opened.text
    order = {
        "case_id": opened.json()["id"],
        "type": "production",
        "platform": "telegram",
        "categories": ["subscriber"],
        "selectors": [sel.model_dump(mode="json")],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543",
        "issuing_authority": "Parquet de Paris",
    }
    issued = await intake.post("/v1/requests", headers=fr, json=order)
    assert issued.status_code == 201, issued.text
    request_id = issued.json()["id"]
    url = f"/v1/requests/{request_id}/evidence"
    jwks: dict[str, Any] = (await intake.get("/.well-known/evidence-jwks.json")).json()

    sent = (await intake.get(url, headers=fr)).json()
    assert [c["kind"] for c in signing.verify_bundle(sent, jwks)] == ["request.sent"]

    answer = factories.response(
        case_ids=[uuid.UUID(opened.json()["id"])],
        selectors=[sel],
        request_id=uuid.UUID(request_id),
    ).model_dump(mode="json")
    answered = await intake.post(
        "/v1/responses", headers=bearer(mint.platform("telegram")), json=answer
    )
    assert answered.status_code == 202, answered.text

    bundle = (await intake.get(url, headers=fr)).json()
    claims = signing.verify_bundle(bundle, jwks)
    assert [c["kind"] for c in claims] == ["request.sent", "request.answered"]
    assert claims[1]["details"]["response_id"] == answered.json()["id"]
    assert {c["details"]["issued_by"] for c in claims} == {"FR"}
    assert "Parquet de Paris" not in str(bundle)  # free text stays in the request
    with pytest.raises(signing.VerificationFailed):
        signing.verify_bundle({**bundle, "subject": f"request:{uuid.uuid4()}"}, jwks)

    # Another authority, and an unknown request, find nothing; a platform is not served here.
    assert (await intake.get(url, headers=bearer(mint.authority("DE")))).status_code == 404
    unknown = f"/v1/requests/{uuid.uuid4()}/evidence"
    assert (await intake.get(unknown, headers=fr)).status_code == 404
    as_platform = await intake.get(url, headers=bearer(mint.platform("telegram")))
    assert as_platform.status_code == 403
