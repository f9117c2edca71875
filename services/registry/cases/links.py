"""Cross-matching by hit/no-hit: who is told of a shared selector, and when references flow.

When a case becomes open, every open case of another (not suspended) jurisdiction on the same
platform that shares a selector with it is linked to it. Each opener is told only that a hit
exists and with which jurisdiction (`CaseLinkFound`, keyed by the link id); neither learns the
other's case id or reference until both have consented (`consent`), when each is sent
`CaseLinkDisclosed`. Cases pending coordination are not open, so they are neither matched nor
told.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.registry.audit import service as audit
from services.registry.cases import repository
from services.registry.cases.models import Case, CaseLink
from services.registry.context import Actor, Context
from services.registry.store import outbox
from shared.errors import NotFound
from shared.events import CaseLinkDisclosed, CaseLinkFound
from shared.schemas import Strict


class LinkOut(Strict):
    """A link as one side sees it: the other side's reference only once both consented."""

    id: uuid.UUID
    platform: str
    other_jurisdiction: str
    case_id: uuid.UUID
    consented: bool
    other_consented: bool
    other_case_reference: str | None
    found_at: datetime


async def cross_match(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    opened_by: str,
    hashes: Collection[str],
    platform: str,
    ctx: Context,
) -> None:
    """Link the (now open) case to the matching open cases and tell both openers of the hit."""
    found = await repository.open_matches(
        session, hashes=hashes, platform=platform, opener=opened_by
    )
    matches = [(other_id, other_opener) for other_id, other_opener, _ in found]
    await link(
        session, case_id=case_id, opened_by=opened_by, matches=matches, platform=platform, ctx=ctx
    )


async def link(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    opened_by: str,
    matches: Collection[tuple[uuid.UUID, str]],
    platform: str,
    ctx: Context,
) -> None:
    """Link the case to each matching (case id, opener) and tell both openers of the hit;
    registration finds its matches in its own round trip and starts here."""
    for other_id, other_opener in sorted(matches):
        a, b = sorted((case_id, other_id))
        link_id = uuid.uuid5(a, str(b))
        if await session.get(CaseLink, link_id) is not None:
            continue  # linked before (a case that was reopened)
        now = datetime.now(UTC)
        session.add(CaseLink(id=link_id, case_a=a, case_b=b, platform=platform, created_at=now))
        for mine, theirs in ((opened_by, other_opener), (other_opener, opened_by)):
            event = CaseLinkFound(
                link_id=link_id,
                jurisdiction=mine,
                other_jurisdiction=theirs,
                platform=platform,
                found_at=now,
            )
            _tell(session, event, mine, link_id, ctx)
        await audit.append(
            session,
            actor="caseshare",
            action="case.linked",
            subject_type="case_link",
            subject_id=str(link_id),
            details={
                "cases": [str(a), str(b)],
                "jurisdictions": sorted({opened_by, other_opener}),
            },
        )


def _tell(
    session: AsyncSession,
    event: CaseLinkFound | CaseLinkDisclosed,
    jurisdiction: str,
    link_id: uuid.UUID,
    ctx: Context,
) -> None:
    # keyed and subjected by the link id: a case id in a header would defeat hit/no-hit
    outbox.add(
        session,
        event,
        key=str(link_id),
        subject=str(link_id),
        prefix=ctx.topic_prefix,
        jurisdiction=jurisdiction,
    )


_A, _B = aliased(Case), aliased(Case)


def _query() -> Select[tuple[CaseLink, Case, Case]]:
    return (
        select(CaseLink, _A, _B)
        .join(_A, _A.id == CaseLink.case_a)
        .join(_B, _B.id == CaseLink.case_b)
    )


def _view(link: CaseLink, a: Case, b: Case, jurisdiction: str) -> LinkOut:
    mine_a = a.opened_by == jurisdiction
    mine, theirs = (a, b) if mine_a else (b, a)
    consented = link.consent_a_at if mine_a else link.consent_b_at
    other = link.consent_b_at if mine_a else link.consent_a_at
    both = consented is not None and other is not None
    return LinkOut(
        id=link.id,
        platform=link.platform,
        other_jurisdiction=theirs.opened_by,
        case_id=mine.id,
        consented=consented is not None,
        other_consented=other is not None,
        other_case_reference=theirs.reference if both else None,
        found_at=link.created_at,
    )


async def list_for(session: AsyncSession, *, jurisdiction: str) -> list[LinkOut]:
    """The jurisdiction's links, newest first, each with where the consents stand."""
    rows = (
        await session.execute(
            _query()
            .where(or_(_A.opened_by == jurisdiction, _B.opened_by == jurisdiction))
            .order_by(CaseLink.created_at.desc(), CaseLink.id)
            .limit(500)
        )
    ).all()
    return [_view(link, a, b, jurisdiction) for link, a, b in rows]


async def consent(
    session: AsyncSession, *, actor: Actor, link_id: uuid.UUID, ctx: Context
) -> LinkOut:
    """Record the caller's consent; the second consent sends both sides the references.

    Idempotent; a link the caller is no side of is NotFound."""
    row = (
        await session.execute(_query().where(CaseLink.id == link_id).with_for_update(of=CaseLink))
    ).first()
    if row is None or actor.jurisdiction not in (row[1].opened_by, row[2].opened_by):
        raise NotFound("no such link")
    link, a, b = row
    now = datetime.now(UTC)
    mine_a = a.opened_by == actor.jurisdiction
    if (link.consent_a_at if mine_a else link.consent_b_at) is None:
        if mine_a:
            link.consent_a_at = now
        else:
            link.consent_b_at = now
        await audit.append(
            session,
            actor=actor.client_id,
            action="case_link.consented",
            subject_type="case_link",
            subject_id=str(link.id),
            details={"jurisdiction": actor.jurisdiction},
        )
        if link.consent_a_at is not None and link.consent_b_at is not None:
            for mine, theirs in ((a, b), (b, a)):
                event = CaseLinkDisclosed(
                    link_id=link.id,
                    jurisdiction=mine.opened_by,
                    case_id=mine.id,
                    case_reference=mine.reference,
                    other_jurisdiction=theirs.opened_by,
                    other_case_reference=theirs.reference,
                    platform=link.platform,
                    disclosed_at=now,
                )
                _tell(session, event, mine.opened_by, link.id, ctx)
    await session.flush()
    return _view(link, a, b, actor.jurisdiction)
