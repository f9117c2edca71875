"""The hub as the release, coordination and link tests drive it: the real intake app in
process, and the router's fan-out and reconciler called directly, over one topic prefix."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.evidence import keys as evidence_keys
from services.router import fanout, publish
from services.router.metrics import RouterMetrics
from services.router.reconciler import Reconciler
from shared import sealing
from shared.db import transaction
from shared.events import ResponseDelivered, topic_name
from shared.kafka import TopicProvisioner, decode, make_producer
from tests import factories
from tests.intake_api import Intake, running, settings_for
from tests.kafka_utils import read_topic

POLICY = publish.Policy(timedelta(seconds=600), timedelta(seconds=600))


@dataclass
class Hub:
    """The intake app and the router's pieces, over one topic prefix."""

    intake: Intake
    sm: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    provisioner: TopicProvisioner
    prefix: str
    bootstrap: str

    async def case(self, code: str, selectors: list[Any], **extra: Any) -> dict[str, Any]:
        body = factories.case(selectors=selectors, **extra).model_dump(mode="json")
        answer = await self.intake.client.post(
            "/v1/cases", json=body, headers=self.intake.authority(code)
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def respond(self, body: dict[str, Any]) -> uuid.UUID:
        """Telegram answers; the router fans the response out."""
        answer = await self.intake.client.post(
            "/v1/responses", json=body, headers=self.intake.platform("telegram")
        )
        assert answer.status_code == 202, answer.text
        response_id = uuid.UUID(answer.json()["id"])
        await fanout.process_response(
            self.sm,
            self.producer,
            self.provisioner,
            response_id=response_id,
            prefix=self.prefix,
            policy=POLICY,
        )
        return response_id

    def reconciler(self, clock: datetime | None = None) -> Reconciler:
        return Reconciler(
            self.sm,
            self.producer,
            self.provisioner,
            database_url="unused: the test drives single passes",
            prefix=self.prefix,
            policy=POLICY,
            max_attempts=3,
            redrive_after=timedelta(hours=1),
            replay_window=timedelta(0),
            interval=1.0,
            redrive=_no_redrive,
            metrics=RouterMetrics(),
            clock=lambda: clock or datetime.now(UTC),
        )

    async def delivered(self, code: str, response_id: uuid.UUID) -> list[ResponseDelivered]:
        topic = topic_name(self.prefix, "inbox", code)
        records = await read_topic(self.bootstrap, topic, settle=0.2)
        events = [decode(r.value, r.headers).event for r in records]
        return [
            e for e in events if isinstance(e, ResponseDelivered) and e.response_id == response_id
        ]

    async def get(self, code: str, path: str, **params: Any) -> Any:
        answer = await self.intake.client.get(
            path, params=params, headers=self.intake.authority(code)
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def inbox(self, code: str, response_id: uuid.UUID) -> list[dict[str, Any]]:
        """The jurisdiction's REST inbox item of this response, if it may see one."""
        path = f"/v1/inbox/{fanout.delivery_id(response_id, code)}"
        answer = await self.intake.client.get(path, headers=self.intake.authority(code))
        assert answer.status_code in (200, 404), answer.text
        return [answer.json()] if answer.status_code == 200 else []

    async def releases(self, code: str, response_id: uuid.UUID) -> list[dict[str, Any]]:
        items = (await self.get(code, "/v1/releases", limit=100))["items"]
        return [r for r in items if r["response_id"] == str(response_id)]

    async def post(self, code: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.intake.client.post(path, json=body, headers=self.intake.authority(code))


async def _no_redrive(response_id: uuid.UUID) -> int:
    raise AssertionError(f"unexpected re-drive of {response_id}")


@asynccontextmanager
async def running_hub(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    topic_prefix: str,
    broker: EmbeddedTansu,
) -> AsyncIterator[Hub]:
    producer = make_producer(broker.bootstrap, client_id="test")
    provisioner = TopicProvisioner(broker.bootstrap, partitions=1)
    await producer.start()
    await provisioner.start()
    try:
        async with running(settings_for(database_url, topic_prefix)) as intake:
            yield Hub(intake, sessionmaker, producer, provisioner, topic_prefix, broker.bootstrap)
    finally:
        await producer.stop()
        await provisioner.close()


def selector(kind: str = "account_handle") -> dict[str, str]:
    value = "@" + uuid.uuid4().hex[:12] if kind == "account_handle" else uuid.uuid4().hex
    return {"kind": kind, "value": value}


def disclosure(sel: dict[str, str], ip: str) -> dict[str, Any]:
    return {
        "selector": sel,
        "category": "subscriber",
        "records": [{"type": "ip_address", "value": ip}],
    }


def response_body(
    *,
    requesting: str | None,
    scope: list[dict[str, str]],
    disclosures: list[dict[str, Any]],
    handling_code: str = "H0",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "requesting_case_id": requesting,
        "scope": {"case_ids": [requesting] if requesting else [], "selectors": scope},
        "handling_code": handling_code,
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": disclosures,
        **extra,
    }


async def unseal(hub: Hub, event: ResponseDelivered, keys_dir: Path) -> list[dict[str, Any]]:
    """The disclosures of a delivery as its recipient opens them: decrypted, and checked to be
    signed by the hub for this very delivery."""
    key = json.loads((keys_dir / f"{event.jurisdiction}.private.jwk.json").read_text())
    async with transaction(hub.sm) as s:
        hub_jwks = await evidence_keys.jwks(s)
    opened = sealing.open_verified(
        event.sealed_disclosures or "", key, hub_jwks, delivery_id=str(event.delivery_id)
    )
    disclosures: list[dict[str, Any]] = opened.disclosures
    return disclosures


async def rows(hub: Hub, model: Any, response_id: uuid.UUID) -> dict[str, Any]:
    """A response's rows of `model` (deliveries, exclusions, releases) by jurisdiction."""
    async with transaction(hub.sm) as s:
        found = (await s.scalars(select(model).where(model.response_id == response_id))).all()
    return {row.jurisdiction: row for row in found}
