"""Registrations that race each other: the outcome must be what running them one after the
other would give, since authorities' clients retry and member states register at once.

The requests commit, so the module runs on a database of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.cases.models import Case, CaseLink
from tests import factories
from tests.intake_api import Intake, running, settings_for

pytestmark = pytest.mark.integration

RACERS = 6


@pytest.fixture
async def intake(database: str, topic_prefix: str) -> AsyncIterator[Intake]:
    async with running(settings_for(database, topic_prefix, DATABASE_POOL_SIZE=RACERS)) as app:
        yield app


async def count(db: AsyncEngine, query: Any) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def test_one_reference_registered_at_once_is_one_case_and_clear_refusals(
    intake: Intake, db: AsyncEngine
) -> None:
    body = factories.case().model_dump(mode="json")
    answers = await asyncio.gather(
        *(
            intake.client.post("/v1/cases", json=body, headers=intake.authority("FR"))
            for _ in range(RACERS)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [422] * (RACERS - 1)
    for refused in (a for a in answers if a.status_code == 422):
        assert "already registered reference" in refused.json()["detail"]
    same = select(func.count()).select_from(Case).where(Case.reference == body["reference"])
    assert await count(db, same) == 1


async def test_cases_sharing_a_selector_registered_at_once_are_linked(
    intake: Intake, db: AsyncEngine
) -> None:
    shared = factories.selector()
    openers = ["FR", "DE", "BE", "NL", "AT", "IT"][:RACERS]
    answers = await asyncio.gather(
        *(
            intake.client.post(
                "/v1/cases",
                json=factories.case(selectors=[shared]).model_dump(mode="json"),
                headers=intake.authority(code),
            )
            for code in openers
        )
    )
    assert {a.status_code for a in answers} == {201}
    ids = [a.json()["id"] for a in answers]
    links = select(func.count()).select_from(CaseLink).where(CaseLink.case_a.in_(ids))
    assert await count(db, links) == len(ids) * (len(ids) - 1) // 2  # every pair, once
