"""Case registration against the real database: validation, cross-matching, isolation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.cases import service as cases
from services.registry.cases.models import CaseLink
from services.registry.cases.rules import CaseStatus
from services.registry.context import Actor, Context
from services.registry.store.models import OutboxEvent
from shared.errors import NotFound, PreconditionFailed, ValidationFailed
from tests import factories

pytestmark = pytest.mark.integration

FR = Actor(client_id="authority-fr", jurisdiction="FR")
DE = Actor(client_id="authority-de", jurisdiction="DE")
KR = Actor(client_id="authority-kr", jurisdiction="KR")


async def test_register_writes_case_audit_and_event(session: AsyncSession, ctx: Context) -> None:
    await audit.drain(session)
    before = await session.scalar(select(func.count()).select_from(AuditEntry))
    out = await cases.register(session, actor=FR, data=factories.case(), ctx=ctx)
    assert out.opened_by == "FR"
    assert out.status is CaseStatus.OPEN
    assert out.selectors[0].masked.endswith("***")
    events = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.key == str(out.id)))
    ).all()
    assert [e.topic for e in events] == [f"{ctx.topic_prefix}.cases.v1"]
    await audit.drain(session)
    assert await session.scalar(select(func.count()).select_from(AuditEntry)) == (before or 0) + 1


async def test_unknown_platform_is_refused(session: AsyncSession, ctx: Context) -> None:
    with pytest.raises(ValidationFailed, match="unknown platform"):
        await cases.register(session, actor=FR, data=factories.case(platform="myspace"), ctx=ctx)


async def test_associated_opener_needs_active_member_coordinator(
    session: AsyncSession, ctx: Context
) -> None:
    with pytest.raises(ValidationFailed, match="coordinating_jurisdiction is required"):
        await cases.register(session, actor=KR, data=factories.case(), ctx=ctx)
    with pytest.raises(ValidationFailed, match="must be an active member state"):
        await cases.register(
            session, actor=KR, data=factories.case(coordinating_jurisdiction="US"), ctx=ctx
        )
    out = await cases.register(
        session, actor=KR, data=factories.case(coordinating_jurisdiction="FR"), ctx=ctx
    )
    assert out.coordinating_jurisdiction == "FR"


async def test_shared_selector_links_cases_and_tells_both(
    session: AsyncSession, ctx: Context
) -> None:
    shared = factories.selector()
    fr = await cases.register(session, actor=FR, data=factories.case(selectors=[shared]), ctx=ctx)
    de = await cases.register(session, actor=DE, data=factories.case(selectors=[shared]), ctx=ctx)
    link = await session.scalar(select(CaseLink).where(CaseLink.case_a.in_([fr.id, de.id])))
    assert link is not None
    assert {link.case_a, link.case_b} == {fr.id, de.id}
    inbox_events = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.event_type == "eu.caseshare.case.link-found.v2",
                OutboxEvent.payload["link_id"].astext == str(link.id),
            )
        )
    ).all()
    assert sorted(e.topic for e in inbox_events) == [
        f"{ctx.topic_prefix}.inbox.DE.v1",
        f"{ctx.topic_prefix}.inbox.FR.v1",
    ]
    for event in inbox_events:
        assert shared.value not in str(event.payload)


async def test_other_jurisdiction_gets_not_found(session: AsyncSession, ctx: Context) -> None:
    out = await cases.register(session, actor=FR, data=factories.case(), ctx=ctx)
    with pytest.raises(NotFound):
        await cases.read(session, case_id=out.id, jurisdiction="DE")


async def test_stale_version_is_refused(session: AsyncSession, ctx: Context) -> None:
    out = await cases.register(session, actor=FR, data=factories.case(), ctx=ctx)
    moved = await cases.change_status(
        session, actor=FR, case_id=out.id, status=CaseStatus.SUSPENDED, expected_version=1, ctx=ctx
    )
    assert moved.version == 2
    with pytest.raises(PreconditionFailed):
        await cases.change_status(
            session, actor=FR, case_id=out.id, status=CaseStatus.OPEN, expected_version=1, ctx=ctx
        )
