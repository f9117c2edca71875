"""Cross-matching on phone numbers: equivalent spellings link two jurisdictions' cases, and the
link events tell each opener only which jurisdiction has a hit, never the number in any form.
"""

from __future__ import annotations

import secrets
import uuid

import orjson
import phonenumbers
import pytest
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.cases import selectors
from services.registry.cases import service as cases
from services.registry.cases.models import CaseLink
from services.registry.cases.schemas import SelectorIn
from services.registry.cases.selectors import SelectorKind
from services.registry.context import Actor, Context
from services.registry.store.models import OutboxEvent
from shared.events import CaseLinkFound
from tests import factories

pytestmark = pytest.mark.integration

FR = Actor(client_id="authority-fr", jurisdiction="FR")
DE = Actor(client_id="authority-de", jurisdiction="DE")
PHONE = SelectorKind.PHONE_NUMBER


def french_mobile() -> str:
    """A valid French mobile number of 9 national digits, unique to the test."""
    while True:
        national = "6" + "".join(secrets.choice("0123456789") for _ in range(8))
        if phonenumbers.is_valid_number(phonenumbers.parse("+33" + national)):
            return national


def spaced(national: str) -> str:
    """'+33 6 12 34 56 78'"""
    pairs = [national[i : i + 2] for i in range(1, 9, 2)]
    return " ".join(["+33", national[0], *pairs])


def phone(value: str) -> SelectorIn:
    return factories.selector(value, kind=PHONE)


async def link_events(session: AsyncSession, link_id: uuid.UUID) -> list[OutboxEvent]:
    return list(
        (
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.event_type == CaseLinkFound.TYPE,
                    OutboxEvent.payload["link_id"].astext == str(link_id),
                )
            )
        ).all()
    )


async def test_two_spellings_of_one_number_link_without_naming_it(
    session: AsyncSession, ctx: Context
) -> None:
    national = french_mobile()
    fr = await cases.register(
        session, actor=FR, data=factories.case(selectors=[phone(spaced(national))]), ctx=ctx
    )
    de = await cases.register(
        session, actor=DE, data=factories.case(selectors=[phone(f"0033{national}")]), ctx=ctx
    )
    link = await session.scalar(select(CaseLink).where(CaseLink.case_a.in_([fr.id, de.id])))
    assert link is not None
    assert {link.case_a, link.case_b} == {fr.id, de.id}

    events = {e.topic: e.payload for e in await link_events(session, link.id)}
    assert events.keys() == {f"{ctx.topic_prefix}.inbox.{c}.v1" for c in ("FR", "DE")}
    told_fr = events[f"{ctx.topic_prefix}.inbox.FR.v1"]
    told_de = events[f"{ctx.topic_prefix}.inbox.DE.v1"]
    # hit/no-hit: who, never which case of either side
    assert told_fr["other_jurisdiction"] == "DE"
    assert told_de["other_jurisdiction"] == "FR"
    for told in (told_fr, told_de):
        text = orjson.dumps(told).decode()
        for case in (fr, de):
            assert str(case.id) not in text
            assert case.reference not in text

    normalised = selectors.normalise(PHONE, f"+33{national}")
    digest = selectors.selector_hash(ctx.hmac_key, PHONE, normalised)
    await audit.drain(session)
    audited = await session.scalar(select(AuditEntry).where(AuditEntry.subject_id == str(link.id)))
    assert audited is not None
    for payload in (told_fr, told_de, audited.details):
        text = orjson.dumps(payload).decode()
        assert national not in text  # the subscriber digits, so no spelling of the number
        assert digest not in text
        assert "phone" not in text


@pytest.mark.parametrize("where", ["same jurisdiction", "other platform"])
async def test_no_link_within_a_jurisdiction_or_across_platforms(
    session: AsyncSession, ctx: Context, where: str
) -> None:
    national = french_mobile()
    first = await cases.register(
        session, actor=FR, data=factories.case(selectors=[phone(f"+33{national}")]), ctx=ctx
    )
    actor, platform = (FR, "telegram") if where == "same jurisdiction" else (DE, "chirp")
    second = await cases.register(
        session,
        actor=actor,
        data=factories.case(platform=platform, selectors=[phone(f"0033 {national}")]),
        ctx=ctx,
    )
    ids = [first.id, second.id]
    found = await session.scalar(
        select(CaseLink).where(or_(CaseLink.case_a.in_(ids), CaseLink.case_b.in_(ids)))
    )
    assert found is None
