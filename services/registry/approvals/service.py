"""Proposing and approving a change of a jurisdiction's status or public key (four eyes).

One administrator alone could otherwise register a key of their own for a jurisdiction and read
every delivery sealed to it from then on, or cut a jurisdiction off. A change of either is only
proposed by the first administrator (audited, nothing changes); a different administrator's
approval applies it (audited again, naming the proposer). A newer proposal for the same
jurisdiction supersedes an older pending one, and everything is checked again at approval, so
a key registered elsewhere in the meantime is still a conflict.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.approvals.models import PendingChange
from services.registry.approvals.rules import ChangeState, may_approve
from services.registry.audit import service as audit
from services.registry.reference.models import Jurisdiction
from services.registry.reference.rules import JurisdictionStatus
from shared import sealing
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.schemas import Strict


class PendingChangeOut(Strict):
    """A proposed change as the approver sees it: everything it would set, and its fate."""

    id: uuid.UUID
    jurisdiction: str
    status: JurisdictionStatus | None
    public_jwk: dict[str, Any] | None
    state: ChangeState
    proposed_by: str
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None


def _out(row: PendingChange) -> PendingChangeOut:
    return PendingChangeOut.model_validate(row, from_attributes=True)


async def checked_key(session: AsyncSession, code: str, jwk: dict[str, Any]) -> dict[str, Any]:
    """The normalised public key, refused if unusable or already another jurisdiction's."""
    try:
        key = sealing.validate_public_jwk(jwk)
    except sealing.InvalidKey as exc:
        raise ValidationFailed(f"public_jwk is refused: {exc}") from None
    holder = await session.scalar(
        select(Jurisdiction.code).where(
            Jurisdiction.public_jwk["kid"].astext == key["kid"], Jurisdiction.code != code
        )
    )
    if holder is not None:
        raise Conflict("this public key is already registered for another jurisdiction")
    return key


def _described(row: Jurisdiction, status: str | None, key: dict[str, Any] | None) -> dict[str, Any]:
    """What the change does, for the audit log: codes and key ids, never key material."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = {"from": row.status, "to": status}
    if key is not None:
        old_kid = (row.public_jwk or {}).get("kid")
        changes["public_key"] = {"from_kid": old_kid, "to_kid": key["kid"]}
    return changes


async def propose(
    session: AsyncSession,
    *,
    actor: str,
    row: Jurisdiction,
    status: str | None,
    key: dict[str, Any] | None,
) -> PendingChangeOut:
    """Record a checked change of `row` for a second administrator; supersede older ones."""
    await session.execute(
        update(PendingChange)
        .where(PendingChange.jurisdiction == row.code, PendingChange.state == ChangeState.PENDING)
        .values(state=ChangeState.SUPERSEDED, decided_by=actor, decided_at=datetime.now(UTC))
    )
    change = PendingChange(
        id=uuid.uuid4(),
        jurisdiction=row.code,
        status=status,
        public_jwk=key,
        state=ChangeState.PENDING,
        proposed_by=actor,
    )
    session.add(change)
    await session.flush()
    await session.refresh(change)
    await audit.append(
        session,
        actor=actor,
        action="jurisdiction.change_proposed",
        subject_type="jurisdiction",
        subject_id=row.code,
        details={"change_id": str(change.id), **_described(row, status, key)},
    )
    return _out(change)


async def list_pending(session: AsyncSession, *, limit: int) -> list[PendingChangeOut]:
    """The changes waiting for approval, oldest first."""
    rows = await session.scalars(
        select(PendingChange)
        .where(PendingChange.state == ChangeState.PENDING)
        .order_by(PendingChange.proposed_at, PendingChange.id)
        .limit(limit)
    )
    return [_out(r) for r in rows]


async def read(session: AsyncSession, *, change_id: uuid.UUID) -> PendingChangeOut:
    """One proposed change, whatever its fate: where a proposal's `Location` points."""
    change = await session.get(PendingChange, change_id)
    if change is None:
        raise NotFound("no such pending change")
    return _out(change)


async def approve(session: AsyncSession, *, actor: str, change_id: uuid.UUID) -> Jurisdiction:
    """Apply a pending change as its second administrator; returns the changed jurisdiction."""
    change = await session.get(PendingChange, change_id, with_for_update=True)
    if change is None:
        raise NotFound(f"no pending change {change_id}")
    if change.state != ChangeState.PENDING:
        raise Conflict(f"this change is {change.state}, not pending")
    if not may_approve(proposed_by=change.proposed_by, approver=actor):
        raise Forbidden("a change needs the approval of another administrator than its proposer")
    row = await session.get(Jurisdiction, change.jurisdiction, with_for_update=True)
    if row is None:
        raise NotFound(f"no jurisdiction {change.jurisdiction}")
    key = None
    if change.public_jwk is not None:
        key = await checked_key(session, row.code, change.public_jwk)
    changes = _described(row, change.status, key)
    if change.status is not None:
        row.status = change.status
    if key is not None:
        row.public_jwk = key
    now = datetime.now(UTC)
    row.updated_at = now
    change.state, change.decided_by, change.decided_at = ChangeState.APPLIED, actor, now
    await session.flush()
    await audit.append(
        session,
        actor=actor,
        action="jurisdiction.updated",
        subject_type="jurisdiction",
        subject_id=row.code,
        details={**changes, "change_id": str(change.id), "proposed_by": change.proposed_by},
    )
    return row
