"""The walking skeleton, end to end: the services run as processes under `caseshare up` and are
driven over HTTP and Kafka, the way an authority, a platform and an integrator would."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import psutil
import pytest

from caseshare.stack import supervised as stack_mod
from shared import sealing
from shared.events import ResponseDelivered
from shared.kafka import Envelope, decode
from tests.kafka_utils import read_topic
from tests.log_scan import file_leaks, stack_log_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
GROUP = "@e2e_group_chat"
DISCLOSED = ("198.51.100.23", "+33612345678", GROUP)


@pytest.fixture(scope="module", autouse=True)
def _scan_for_what_this_module_discloses(disclosed: set[str]) -> None:
    """The stacks' logs are scanned for these once stopped (tests/e2e/conftest.py)."""
    disclosed.update(DISCLOSED)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def case_body(reference: str) -> dict[str, object]:
    return {
        "reference": reference,
        "platform": "telegram",
        "legal_basis": "Art. 18 CoE Convention",
        "offence_categories": ["fraud"],
        "selectors": [{"kind": "account_handle", "value": GROUP}],
    }


def response_body(case_id: str) -> dict[str, object]:
    return {
        "scope": {"case_ids": [case_id]},
        "handling_code": "H0",
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": [
            {
                "selector": {"kind": "account_handle", "value": GROUP},
                "category": "subscriber",
                "records": [
                    {"type": "ip_address", "value": "198.51.100.23"},
                    {"type": "phone_number", "value": "+33612345678"},
                ],
            }
        ],
    }


async def test_case_response_inbox_ack(running: stack_mod.RunningStack) -> None:
    fr, telegram = running.token("authority-fr"), running.token("platform-telegram")
    async with httpx.AsyncClient(base_url=running.intake, timeout=10) as http:
        created = await http.post("/v1/cases", json=case_body("FR-E2E-1"), headers=bearer(fr))
        assert created.status_code == 201, created.text
        case_id = created.json()["id"]
        submitted = await http.post(
            "/v1/responses", json=response_body(case_id), headers=bearer(telegram)
        )
        assert submitted.status_code == 202, submitted.text

        response_id = submitted.json()["id"]
        delivered = await _deliveries_of(running, "FR", response_id)
        assert len(delivered) == 1
        event = delivered[0].event
        private = json.loads((running.state / "keys" / "FR.private.jwk.json").read_text())
        hub_jwks = (await http.get("/.well-known/evidence-jwks.json")).json()
        opened = sealing.open_verified(
            event.sealed_disclosures,  # type: ignore[attr-defined]
            private,
            hub_jwks,
            delivery_id=delivered[0].ce_id,
        ).disclosures
        assert opened[0]["records"][0]["value"] == "198.51.100.23"

        inbox = (await http.get("/v1/inbox", headers=bearer(fr))).json()["items"]
        mine = [i["delivery_id"] for i in inbox if i["response_id"] == response_id]
        assert mine == [delivered[0].ce_id]
        first = await http.post(f"/v1/inbox/{delivered[0].ce_id}/ack", headers=bearer(fr))
        again = await http.post(f"/v1/inbox/{delivered[0].ce_id}/ack", headers=bearer(fr))
        assert first.status_code == again.status_code == 200
        assert first.json()["acknowledged_at"] == again.json()["acknowledged_at"]

    # the services logged the whole flow, and never a disclosed value
    assert file_leaks(stack_log_files(running.state), DISCLOSED) == {}


async def _deliveries_of(
    running: stack_mod.RunningStack, code: str, response_id: str, *, within: float = 30
) -> list[Envelope]:
    """This response's deliveries on a jurisdiction's inbox topic, which the shared stack's
    other tests also write to: waits until at least one is there."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        records = await read_topic(running.bootstrap, f"caseshare.inbox.{code}.v1", settle=0.5)
        envelopes = [decode(r.value, r.headers) for r in records]
        mine = [
            e
            for e in envelopes
            if isinstance(e.event, ResponseDelivered) and str(e.event.response_id) == response_id
        ]
        if mine or asyncio.get_running_loop().time() > deadline:
            return mine
        await asyncio.sleep(0.5)


async def test_bad_input_is_refused_and_changes_nothing(
    running: stack_mod.RunningStack,
) -> None:
    fr, telegram = running.token("authority-fr"), running.token("platform-telegram")
    # A NUL beside disclosed values once made PostgreSQL fail the request and the log show them.
    with_nul = response_body("00000000-0000-4000-8000-000000000000")
    with_nul["disclosures"][0]["records"].append({"type": "note", "value": "a\x00b"})  # type: ignore[index]
    async with httpx.AsyncClient(base_url=running.intake, timeout=10) as http:
        before = (await http.get("/v1/cases", headers=bearer(fr))).json()["items"]
        unknown = case_body("FR-E2E-BAD") | {"platform": "myspace"}
        cases = [
            (await http.post("/v1/responses", json=with_nul, headers=bearer(telegram)), 422),
            (await http.post("/v1/cases", json=unknown, headers=bearer(fr)), 422),
            (
                await http.post(
                    "/v1/cases",
                    content=b"{not json",
                    headers=bearer(fr) | {"Content-Type": "application/json"},
                ),
                422,
            ),
            (await http.post("/v1/cases", json=case_body("FR-E2E-BAD")), 401),
            (
                await http.post(
                    "/v1/cases",
                    json=case_body("FR-E2E-BAD") | {"opened_by": "DE"},
                    headers=bearer(fr),
                ),
                422,
            ),
        ]
        for answer, status in cases:
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == status
        after = (await http.get("/v1/cases", headers=bearer(fr))).json()["items"]
        assert after == before


async def test_every_accepted_case_survives_a_kill_of_intake(
    own_stack: stack_mod.RunningStack,
) -> None:
    fr = own_stack.token("authority-fr")
    accepted: list[str] = []
    statuses: list[int] = []

    async def register(http: httpx.AsyncClient, n: int) -> None:
        try:
            answer = await http.post(
                "/v1/cases", json=case_body(f"FR-KILL-{n}"), headers=bearer(fr)
            )
        except httpx.HTTPError:
            return  # the connection died with the process: not accepted, nothing promised
        statuses.append(answer.status_code)
        if answer.status_code == 201:
            accepted.append(answer.json()["id"])

    intake = next(p for p in own_stack.descendants() if "services.intake" in " ".join(p.cmdline()))
    async with httpx.AsyncClient(base_url=own_stack.intake, timeout=10) as http:
        tasks = [asyncio.create_task(register(http, n)) for n in range(300)]
        for _ in range(600):  # kill once some are accepted and many are still in flight
            if len(accepted) >= 20:
                break
            await asyncio.sleep(0.05)
        intake.kill()  # SIGKILL, mid-load
        await asyncio.gather(*tasks)
    assert 0 < len(accepted) < 300, f"the kill must land mid-load; answers: {statuses[:20]}"

    await _wait_ready(own_stack.intake)
    async with httpx.AsyncClient(base_url=own_stack.intake, timeout=10) as http:
        for case_id in accepted:
            found = await http.get(f"/v1/cases/{case_id}", headers=bearer(fr))
            assert found.status_code == 200, case_id


async def _wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(150):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("intake did not come back")


def test_sigterm_leaves_nothing_and_restart_reuses_data(
    own_stack: stack_mod.RunningStack,
) -> None:
    fr = own_stack.token("authority-fr")
    with httpx.Client(base_url=own_stack.intake, timeout=10) as http:
        made = http.post("/v1/cases", json=case_body("FR-E2E-KEEP"), headers=bearer(fr))
        assert made.status_code == 201
    children = own_stack.descendants()
    assert len(children) >= 6  # postgres, broker, issuer, intake, registry, router
    assert stack_mod.stop(own_stack, sig=signal.SIGTERM) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.info for p in alive]

    again = stack_mod.start(own_stack.state, own_stack.ports)
    try:
        token = again.token("authority-fr")
        with httpx.Client(base_url=again.intake, timeout=10) as http:
            case = http.get(f"/v1/cases/{made.json()['id']}", headers=bearer(token))
            assert case.status_code == 200
            assert case.json()["reference"] == "FR-E2E-KEEP"
    finally:
        assert stack_mod.stop(again, sig=signal.SIGINT) == 0
