"""Appending to the hash-chained audit log and verifying it from the database.

Appends are serialised by a transaction-scoped advisory lock so each entry can carry its
predecessor's hash; callers append last in their transaction to hold the lock briefly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import AuditEntry
from shared import audit_chain

AUDIT_LOCK_KEY = 0x0CA5E5A0D17  # arbitrary, stable: the one advisory lock of the audit chain
VERIFY_BATCH = 2000


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry chained to the current head; never carries personal data."""
    entries = await append_many(
        session,
        [
            {
                "actor": actor,
                "action": action,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "details": details,
            }
        ],
    )
    return entries[0]


async def append_many(
    session: AsyncSession, entries: Sequence[Mapping[str, Any]]
) -> list[AuditEntry]:
    """Chain several entries under one lock acquisition and insert them in one flush.

    Pending changes are flushed before the lock is taken, so the lock, which serialises every
    writer of every service, is held for as few round trips as possible.
    """
    if not entries:
        return []
    await session.flush()
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    head = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    prev_hash = head.hash if head else audit_chain.GENESIS_HASH
    seq = head.seq if head else 0
    at = datetime.now(UTC)
    rows = []
    for entry in entries:
        seq += 1
        body = dict(entry.get("details") or {})
        actor, action = str(entry["actor"]), str(entry["action"])
        subject_type, subject_id = str(entry["subject_type"]), str(entry["subject_id"])
        digest = audit_chain.chain_next(
            prev_hash, seq, at, actor, action, subject_type, subject_id, body
        )
        rows.append(
            AuditEntry(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
                details=body,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    session.add_all(rows)
    await session.flush()
    return rows


async def _records(session: AsyncSession) -> AsyncIterator[audit_chain.AuditRecord]:
    last = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield audit_chain.AuditRecord(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                subject_type=row.subject_type,
                subject_id=row.subject_id,
                details=row.details,
                prev_hash=row.prev_hash,
                hash=row.hash,
            )
        last = rows[-1].seq


async def verify(session: AsyncSession) -> audit_chain.VerifyResult:
    """Walk the whole chain in batches and report the first broken entry, if any."""
    records = [r async for r in _records(session)]
    return audit_chain.verify(records)
