"""Recall: withdrawn from inboxes before acknowledgement, deletion asked for and confirmed with
evidence after it; only the submitting platform or the originator may recall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.deliveries.models import Delivery
from services.registry.evidence import repository, service
from services.registry.evidence.models import DeletionRequest
from services.registry.store.models import OutboxEvent
from shared import evidence as signing
from shared.db import transaction
from shared.events import DeletionReminded, DeliveryRecalled, ResponseRecalled
from tests.integration.api.conftest import TOPIC_PREFIX
from tests.integration.api.evidence_scene import deliver
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

REASON = {"reason": "sent in error: wrong account"}


async def _inbox_ids(intake: httpx.AsyncClient, headers: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await intake.get("/v1/inbox", headers=headers, params=params)).json()
        ids |= {item["delivery_id"] for item in page["items"]}
        if not (cursor := page["next_cursor"]):
            return ids


async def _events(sm: async_sessionmaker[AsyncSession], subject: str) -> list[dict[str, Any]]:
    async with transaction(sm) as session:
        rows = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.subject == subject).order_by(OutboxEvent.id)
            )
        ).all()
    return [{"type": r.event_type, "topic": r.topic, **r.payload} for r in rows]


async def test_recall_withdraws_unacknowledged_and_asks_acknowledged_to_delete(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    fr, de = bearer(mint.authority("FR")), bearer(mint.authority("DE"))
    assert (await intake.post(f"/v1/inbox/{scene.deliveries['FR']}/ack", headers=fr)).is_success
    de_id = str(scene.deliveries["DE"])
    assert de_id in await _inbox_ids(intake, de)

    # Nobody but the platform and the originator: another platform, DE (a recipient, not the
    # originator) and an unknown response all look the same.
    url = f"/v1/responses/{scene.response_id}/recall"
    for outsider in (bearer(mint.platform("chirp")), de):
        refused = await intake.post(url, headers=outsider, json=REASON)
        assert refused.status_code == 404
    # An originator's token without cases:write is not a recaller at all.
    inbox_only = bearer(mint.token("authority-fr", ("inbox:read",), jurisdiction="FR"))
    assert (await intake.post(url, headers=inbox_only, json=REASON)).status_code == 403
    assert (await intake.post(url, headers=fr, json={"reason": "a\u0000b"})).status_code == 422
    assert de_id in await _inbox_ids(intake, de)  # the refusals changed nothing

    recalled = await intake.post(url, headers=fr, json=REASON)  # FR opened the requesting case
    assert recalled.status_code == 200, recalled.text
    assert (recalled.json()["withdrawn"], recalled.json()["deletion_requested"]) == (1, 1)
    again = await intake.post(url, headers=bearer(mint.platform("telegram")), json=REASON)
    assert again.json()["recalled_at"] == recalled.json()["recalled_at"]

    # The unacknowledged delivery is gone from DE's inbox, and unreachable there.
    assert de_id not in await _inbox_ids(intake, de)
    assert (await intake.get(f"/v1/inbox/{de_id}", headers=de)).status_code == 404
    assert (await intake.post(f"/v1/inbox/{de_id}/ack", headers=de)).status_code == 404
    withdrawn = await _events(sessionmaker, de_id)
    notice = [e for e in withdrawn if e["type"] == DeliveryRecalled.TYPE]
    assert [(n["deletion_required"], n["topic"]) for n in notice] == [
        (False, f"{TOPIC_PREFIX}.inbox.DE.v1")
    ]

    # The acknowledged one stays, without its ciphertext, and gets a deletion notice.
    fr_id = str(scene.deliveries["FR"])
    item = (await intake.get(f"/v1/inbox/{fr_id}", headers=fr)).json()
    assert (item["state"], item["sealed_disclosures"]) == ("acknowledged", None)
    notice = [e for e in await _events(sessionmaker, fr_id) if e["type"] == DeliveryRecalled.TYPE]
    assert [(n["deletion_required"], n["topic"]) for n in notice] == [
        (True, f"{TOPIC_PREFIX}.inbox.FR.v1")
    ]
    summary = await _events(sessionmaker, str(scene.response_id))
    assert [e["recalled_by"] for e in summary if e["type"] == ResponseRecalled.TYPE] == [
        "originator"
    ]
    status = (
        await intake.get(
            f"/v1/responses/{scene.response_id}", headers=bearer(mint.platform("telegram"))
        )
    ).json()
    assert status["recipients"][0]["deletion"] == "requested"
    assert status["other_recipients"] == {"recalled": 1}

    # Confirmation: only the recipient, only for a recalled delivery, recorded with evidence.
    confirm = f"/v1/inbox/{fr_id}/deletion-confirmation"
    assert (await intake.post(confirm, headers=de)).status_code == 404
    confirmed = await intake.post(confirm, headers=fr)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "confirmed"
    twice = await intake.post(confirm, headers=fr)
    assert twice.json()["confirmed_at"] == confirmed.json()["confirmed_at"]
    bundle = (await intake.get(f"/v1/inbox/{fr_id}/evidence", headers=fr)).json()
    jwks = (await intake.get("/.well-known/evidence-jwks.json")).json()
    kinds = [c["kind"] for c in signing.verify_bundle(bundle, jwks)]
    assert kinds == [
        "delivery.relayed",
        "delivery.retrieved",
        "delivery.deletion-requested",
        "delivery.deletion-confirmed",
    ]
    de_bundle = (await intake.get(f"/v1/inbox/{de_id}/evidence", headers=de)).json()
    assert [r["kind"] for r in de_bundle["records"]] == ["delivery.relayed", "delivery.withdrawn"]


async def test_confirming_an_unrecalled_delivery_is_a_conflict(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    answer = await intake.post(
        f"/v1/inbox/{scene.deliveries['FR']}/deletion-confirmation",
        headers=bearer(mint.authority("FR")),
    )
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"


async def test_open_deletions_are_reminded_until_confirmed(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    fr = bearer(mint.authority("FR"))
    await intake.post(f"/v1/inbox/{scene.deliveries['FR']}/ack", headers=fr)
    platform = bearer(mint.platform("telegram"))
    await intake.post(f"/v1/responses/{scene.response_id}/recall", headers=platform, json=REASON)
    fr_id = scene.deliveries["FR"]
    later = datetime.now(UTC) + timedelta(days=2)
    async with transaction(sessionmaker) as session:
        assert await repository.open_deletions(session) >= 1
        shown = await repository.open_deletion_requests(session, limit=1000)
        assert fr_id in {r.delivery_id for r in shown}  # what the dashboard lists
        # A clock two days on: the request is due (others left by other tests may be too).
        while await service.remind(
            session, now=later, every=timedelta(days=1), prefix=TOPIC_PREFIX
        ):
            pass
        request = await session.get(DeletionRequest, fr_id)
        assert request is not None
        assert (request.reminders, request.reminded_at) == (1, later)
        # Reminded now: not due again within the day.
        assert (
            await service.remind(
                session,
                now=later + timedelta(hours=1),
                every=timedelta(days=1),
                prefix=TOPIC_PREFIX,
            )
            == 0
        )
    reminders = [
        e for e in await _events(sessionmaker, str(fr_id)) if e["type"] == DeletionReminded.TYPE
    ]
    assert [r["reminder"] for r in reminders] == [1]
    await intake.post(f"/v1/inbox/{fr_id}/deletion-confirmation", headers=fr)
    async with transaction(sessionmaker) as session:
        assert (
            await service.remind(
                session, now=later + timedelta(days=5), every=timedelta(days=1), prefix=TOPIC_PREFIX
            )
            >= 0
        )
        request = await session.get(DeletionRequest, fr_id)
        assert request is not None
        assert request.reminders == 1  # confirmed: never reminded again
        delivery = await session.get(Delivery, fr_id)
        assert delivery is not None
        assert delivery.state == "acknowledged"


async def test_a_failed_delivery_stays_in_its_recipients_inbox_with_its_state(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    de_id = scene.deliveries["DE"]
    async with transaction(sessionmaker) as session:  # what the reconciler does at max attempts
        delivery = await session.get(Delivery, de_id)
        assert delivery is not None
        delivery.state, delivery.failed_at = "failed", datetime.now(UTC)
    de = bearer(mint.authority("DE"))
    assert str(de_id) in await _inbox_ids(intake, de)
    item = await intake.get(f"/v1/inbox/{de_id}", headers=de)
    assert (item.status_code, item.json()["state"]) == (200, "failed")
