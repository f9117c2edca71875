"""A response delivered to FR (its requesting case) and DE (a selector match), over HTTP.

Shared by the evidence, recall and Location tests: the platform submits through intake, the
fan-out is decided and marked published in process (no broker needed), and each step leaves
its signed evidence behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router import fanout
from shared.db import transaction
from tests import factories
from tests.integration.api.conftest import TOPIC_PREFIX
from tests.tokens import TokenMint, bearer

POLICY = fanout.Policy(timedelta(minutes=5), timedelta(hours=1))


@dataclass(frozen=True)
class Scene:
    response_id: uuid.UUID
    cases: dict[str, uuid.UUID]
    deliveries: dict[str, uuid.UUID]


async def open_case(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    code: str,
    sel: factories.SelectorIn,
    platform: str = "telegram",
) -> uuid.UUID:
    answer = await intake.post(
        "/v1/cases",
        headers=bearer(mint.authority(code)),
        json=factories.case(selectors=[sel], platform=platform).model_dump(mode="json"),
    )
    assert answer.status_code == 201, answer.text
    return uuid.UUID(answer.json()["id"])


async def deliver(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    sm: async_sessionmaker[AsyncSession],
    *,
    platform: str = "telegram",
    sign: Callable[[list[Any]], str] | None = None,
) -> Scene:
    """FR and DE share a selector; the platform answers FR's request; both are delivered."""
    sel = factories.selector()
    cases = {code: await open_case(intake, mint, code, sel, platform) for code in ("FR", "DE")}
    body = factories.response(
        case_ids=[cases["FR"]], selectors=[sel], requesting_case_id=cases["FR"]
    ).model_dump(mode="json")
    if sign is not None:
        body["disclosures_signature"] = sign(body["disclosures"])
    answer = await intake.post("/v1/responses", headers=bearer(mint.platform(platform)), json=body)
    assert answer.status_code == 202, f"{answer.status_code} {answer.text}"
    response_id = uuid.UUID(answer.json()["id"])
    await route(sm, response_id)
    deliveries = {code: fanout.delivery_id(response_id, code) for code in cases}
    return Scene(response_id=response_id, cases=cases, deliveries=deliveries)


async def route(sm: async_sessionmaker[AsyncSession], response_id: uuid.UUID) -> None:
    async with transaction(sm) as session:
        routed = await fanout.decide_and_record(
            session, response_id=response_id, prefix=TOPIC_PREFIX
        )
        assert routed is not None
    async with transaction(sm) as session:
        await fanout.mark_published(
            session, records=routed.records, policy=POLICY, prefix=TOPIC_PREFIX
        )
