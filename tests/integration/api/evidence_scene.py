"""A response delivered to FR (its requesting case) and DE (a selector match), over HTTP.

Shared by the evidence, recall and Location tests: the platform submits through intake, the
fan-out is decided and marked published in process (no broker needed), and each step leaves
its signed evidence behind. DE is not a requesting party, so its delivery is held until FR (the
originator) releases it; by default the scene releases it over REST, as FR would, and
publishes it as the reconciler's release sweep does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.releases.service import release_id
from services.router import fanout, publish
from services.router.publish import load_outgoing, mark_published
from shared.db import transaction
from tests import factories
from tests.integration.api.conftest import TOPIC_PREFIX
from tests.tokens import TokenMint, bearer

POLICY = publish.Policy(timedelta(minutes=5), timedelta(hours=1))


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
    release: bool = True,
) -> Scene:
    """FR and DE share a selector; the platform answers FR's request; FR receives at once and
    DE once FR releases it (with `release=False`, DE's delivery stays held)."""
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
    if release:
        await release_held(intake, mint, sm, deliveries["DE"])
    return Scene(response_id=response_id, cases=cases, deliveries=deliveries)


async def route(sm: async_sessionmaker[AsyncSession], response_id: uuid.UUID) -> None:
    async with transaction(sm) as session:
        routed = await fanout.decide_and_record(
            session, response_id=response_id, prefix=TOPIC_PREFIX
        )
        assert routed is not None
    async with transaction(sm) as session:
        await publish.mark_published(
            session, records=routed.records, policy=POLICY, prefix=TOPIC_PREFIX
        )


async def release_held(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    sm: async_sessionmaker[AsyncSession],
    delivery_id: uuid.UUID,
    *,
    originator: str = "FR",
) -> None:
    """The originator releases a held delivery; then it is published as the sweep would."""
    decided = await intake.post(
        f"/v1/releases/{release_id(delivery_id)}",
        headers=bearer(mint.authority(originator)),
        json={"decision": "release"},
    )
    assert decided.status_code == 200, decided.text
    async with transaction(sm) as session:
        records = await load_outgoing(session, prefix=TOPIC_PREFIX, delivery_ids=[delivery_id])
    assert len(records) == 1
    async with transaction(sm) as session:
        await mark_published(session, records=records, policy=POLICY, prefix=TOPIC_PREFIX)
