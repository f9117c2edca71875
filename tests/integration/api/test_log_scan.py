"""Finding 2 of the attack run: disclosed values reached the logs through a failing request.

A NUL in one record made PostgreSQL refuse the row; the request failed with 500 and the
database error, with the statement's parameters (the other records' IP addresses and phone
numbers), was logged. Here the intake is driven with distinctive disclosed values, through
accepted requests and through every kind of refused one, and nothing it logged, at any level,
holds any of them.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
import pytest

from tests import factories
from tests.integration.api.conftest import World
from tests.log_scan import formatted, leaks
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

IP = "198.51.100.231"
PHONE = "+33655501234"
HANDLE = "@logscan_distinct_handle"
DISCLOSED = (IP, PHONE, HANDLE)


def response_body(case_id: uuid.UUID, *extra: dict[str, str], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scope": {"case_ids": [str(case_id)]},
        "handling_code": "H0",
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": [
            {
                "selector": {"kind": "account_handle", "value": HANDLE},
                "category": "subscriber",
                "records": [
                    {"type": "ip_address", "value": IP},
                    {"type": "phone_number", "value": PHONE},
                    *extra,
                ],
            }
        ],
    }
    return body | fields


async def test_nothing_disclosed_is_logged_on_any_path(
    intake: httpx.AsyncClient, mint: TokenMint, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fr, telegram = bearer(mint.authority("FR")), bearer(mint.platform("telegram"))
    case = factories.case(selectors=[factories.selector(HANDLE)]).model_dump(mode="json")
    created = await intake.post("/v1/cases", json=case, headers=fr)
    assert created.status_code == 201, created.text
    case_id = uuid.UUID(created.json()["id"])

    refused = [
        response_body(case_id, {"type": "note", "value": "nul\x00here"}),
        response_body(case_id, {"type": "ip\x00address", "value": "x"}),
        response_body(case_id, request_reference="REQ\x00-1"),
        response_body(case_id, {"type": "note", "value": "lone\ud800"}),
        response_body(uuid.uuid4()),
        response_body(case_id, handling_code="H9"),
    ]
    for body in refused:
        answer = await intake.post(
            "/v1/responses",
            content=json.dumps(body).encode(),
            headers=telegram | {"Content-Type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, answer.text
    broken = json.dumps(response_body(case_id))[:-5].encode()
    answer = await intake.post("/v1/responses", content=broken, headers=telegram)
    assert answer.status_code == 422
    nul_case = case | {"legal_basis": "Art.\x00 18", "reference": "LOGSCAN-1"}
    assert (await intake.post("/v1/cases", json=nul_case, headers=fr)).status_code == 422
    accepted = await intake.post("/v1/responses", json=response_body(case_id), headers=telegram)
    assert accepted.status_code == 202, accepted.text

    assert caplog.records, "the intake logged nothing: the scan would prove nothing"
    assert leaks(formatted(caplog.records), DISCLOSED) == []
