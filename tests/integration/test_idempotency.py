"""`Idempotency-Key` over HTTP on intake's two POSTs: a retry replays the first answer, a key
reused for another body is refused, keys belong to their client, and racing retries act once.

The requests commit, so the module runs on a database of its own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.cases.models import Case
from services.registry.responses.models import CooperationResponse
from services.registry.store.models import OutboxEvent
from tests import factories
from tests.intake_api import Intake, running, settings_for

pytestmark = pytest.mark.integration

RACERS = 5


@dataclass(frozen=True)
class Endpoint:
    """One idempotent POST: where it goes, who calls it, what a fresh body is, what it creates."""

    path: str
    status: int
    caller: Callable[[Intake, str], dict[str, str]]
    body: Callable[[], dict[str, Any]]
    rows: Any  # the mapped class whose rows the POST creates
    reference: Any  # the column that carries the body's unique reference

    def reference_of(self, body: dict[str, Any]) -> str:
        return str(body.get("reference") or body.get("request_reference"))


def case_body() -> dict[str, Any]:
    return factories.case().model_dump(mode="json")


def response_body() -> dict[str, Any]:
    answer = factories.response(
        selectors=[factories.selector()], request_reference=factories.reference()
    )
    return answer.model_dump(mode="json")


CASES = Endpoint(
    path="/v1/cases",
    status=201,
    caller=lambda intake, who: intake.authority(who),
    body=case_body,
    rows=Case,
    reference=Case.reference,
)
RESPONSES = Endpoint(
    path="/v1/responses",
    status=202,
    caller=lambda intake, who: intake.platform("telegram", client_id=f"platform-telegram-{who}"),
    body=response_body,
    rows=CooperationResponse,
    reference=CooperationResponse.request_reference,
)
ENDPOINTS = [pytest.param(CASES, id="cases"), pytest.param(RESPONSES, id="responses")]


@pytest.fixture
async def intake(database: str, topic_prefix: str) -> AsyncIterator[Intake]:
    async with running(settings_for(database, topic_prefix)) as app:
        yield app


async def post(
    intake: Intake, endpoint: Endpoint, body: dict[str, Any], *, key: str, who: str = "FR"
) -> httpx.Response:
    headers = {**endpoint.caller(intake, who), "Idempotency-Key": key}
    return await intake.client.post(endpoint.path, json=body, headers=headers)


async def created(db: AsyncEngine, endpoint: Endpoint, body: dict[str, Any]) -> int:
    """How many rows the POST of `body` left behind."""
    query = select(func.count()).where(endpoint.reference == endpoint.reference_of(body))
    async with db.connect() as conn:
        return int(await conn.scalar(query.select_from(endpoint.rows)) or 0)


async def totals(db: AsyncEngine) -> dict[str, int]:
    async with db.connect() as conn:
        return {
            model.__tablename__: int(
                await conn.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (Case, CooperationResponse, AuditEntry, QueuedAuditEntry, OutboxEvent)
        }


def key() -> str:
    return "retry-" + secrets.token_hex(8)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_retry_replays_the_first_answer_and_acts_once(
    intake: Intake, db: AsyncEngine, endpoint: Endpoint
) -> None:
    body, k = endpoint.body(), key()
    first = await post(intake, endpoint, body, key=k)
    again = await post(intake, endpoint, body, key=k)
    assert first.status_code == endpoint.status
    assert "idempotent-replayed" not in first.headers
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await created(db, endpoint, body) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_key_reused_for_another_body_is_422_and_changes_nothing(
    intake: Intake, db: AsyncEngine, endpoint: Endpoint
) -> None:
    k = key()
    assert (await post(intake, endpoint, endpoint.body(), key=k)).status_code == endpoint.status
    before = await totals(db)
    other = endpoint.body()
    refused = await post(intake, endpoint, other, key=k)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in refused.json()["detail"]
    assert await totals(db) == before
    assert await created(db, endpoint, other) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_clients_use_the_same_key_independently(
    intake: Intake, db: AsyncEngine, endpoint: Endpoint
) -> None:
    k = key()
    mine, theirs = endpoint.body(), endpoint.body()
    first = await post(intake, endpoint, mine, key=k, who="FR")
    second = await post(intake, endpoint, theirs, key=k, who="DE")
    assert (first.status_code, second.status_code) == (endpoint.status, endpoint.status)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert await created(db, endpoint, mine) == 1
    assert await created(db, endpoint, theirs) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_racing_retries_act_once_and_agree(
    intake: Intake, db: AsyncEngine, endpoint: Endpoint
) -> None:
    body, k = endpoint.body(), key()
    answers = await asyncio.gather(*(post(intake, endpoint, body, key=k) for _ in range(RACERS)))
    assert {a.status_code for a in answers} == {endpoint.status}
    assert all(a.json() == answers[0].json() for a in answers)  # jsonb may reorder keys
    replayed = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == RACERS - 1
    assert await created(db, endpoint, body) == 1


async def test_a_malformed_key_is_422(intake: Intake) -> None:
    refused = await post(intake, CASES, case_body(), key="x" * 256)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
