"""Loading the reference data again changes nothing, and keeps what administrators changed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.reference import seed
from services.registry.reference import service as admin
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.reference.rules import JurisdictionStatus

pytestmark = pytest.mark.integration

ADMIN = "registry-admin-1"


async def snapshot(session: AsyncSession) -> dict[str, Any]:
    """Every reference row, every column, and the audit log's length."""
    session.expunge_all()  # read what is stored, not what the session remembers

    def rows(found: Any) -> list[dict[str, Any]]:
        return [{c.name: getattr(r, c.name) for c in r.__table__.columns} for r in found]

    return {
        "jurisdictions": rows(
            (await session.scalars(select(Jurisdiction).order_by(Jurisdiction.code))).all()
        ),
        "platforms": rows((await session.scalars(select(Platform).order_by(Platform.slug))).all()),
        "audit": await session.scalar(select(func.count()).select_from(AuditEntry)),
        "audit queue": await session.scalar(select(func.count()).select_from(QueuedAuditEntry)),
    }


async def test_loading_again_changes_nothing(session: AsyncSession) -> None:
    before = await snapshot(session)  # the session fixture's database was loaded already
    assert len(before["jurisdictions"]) > 27
    await seed.load(session)
    await seed.load(session)
    assert await snapshot(session) == before


async def test_administrators_changes_survive_a_reload(session: AsyncSession) -> None:
    proposed = await admin.update_jurisdiction(
        session,
        actor=ADMIN,
        code="MT",
        data=admin.JurisdictionUpdate(status=JurisdictionStatus.SUSPENDED, note="on hold"),
    )
    assert proposed.pending is not None  # a status change takes a second administrator
    await admin.approve_change(session, actor="second-admin", change_id=proposed.pending.id)
    await admin.update_platform(
        session,
        actor=ADMIN,
        slug="chirp",
        data=admin.PlatformUpdate(name="Chirp Ltd", legal_rep_jurisdiction="NL"),
    )
    changed = await snapshot(session)
    await seed.load(session)
    assert await snapshot(session) == changed
    malta = await session.get(Jurisdiction, "MT")
    chirp = await session.get(Platform, "chirp")
    assert malta is not None
    assert chirp is not None
    assert (malta.status, malta.note) == ("suspended", "on hold")
    assert (chirp.name, chirp.legal_rep_jurisdiction) == ("Chirp Ltd", "NL")
