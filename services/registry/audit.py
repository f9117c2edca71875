"""Appending to the hash-chained audit log and verifying it from the database.

Appends are serialised by a transaction-scoped advisory lock so each entry can carry its
predecessor's hash; callers append last in their transaction to hold the lock briefly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import AuditEntry
from shared import audit_chain

AUDIT_LOCK_KEY = 0x0CA5E5A0D17  # arbitrary, stable: the one advisory lock of the audit chain
VERIFY_BATCH = 2000
# (client_id, jti) of the request being served; see `bind_token`.
_request_token: ContextVar[tuple[str, str] | None] = ContextVar("audit_token", default=None)


def bind_token(*, client_id: str, token_id: str) -> Token[tuple[str, str] | None]:
    """Tag this request's audit entries by `client_id` with the access token's jti.

    Set once per request by the API guard, so every use case's entry names the token that made
    the change without each use case taking it as an argument; `unbind_token` ends it.
    """
    return _request_token.set((client_id, token_id))


def unbind_token(token: Token[tuple[str, str] | None]) -> None:
    """End the binding `bind_token` made, once the request is done."""
    _request_token.reset(token)


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
    bound = _request_token.get()
    rows = []
    for entry in entries:
        seq += 1
        body = dict(entry.get("details") or {})
        if bound is not None and bound[0] == entry["actor"]:
            body.setdefault("token_id", bound[1])
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


async def _batch(session: AsyncSession, after: int) -> list[audit_chain.AuditRecord]:
    """The next `VERIFY_BATCH` entries after seq `after`, as plain rows (no identity map)."""
    rows = await session.execute(
        select(
            AuditEntry.seq,
            AuditEntry.at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.subject_type,
            AuditEntry.subject_id,
            AuditEntry.details,
            AuditEntry.prev_hash,
            AuditEntry.hash,
        )
        .where(AuditEntry.seq > after)
        .order_by(AuditEntry.seq)
        .limit(VERIFY_BATCH)
    )
    return [audit_chain.AuditRecord(**row._asdict()) for row in rows]


async def verify(session: AsyncSession) -> audit_chain.VerifyResult:
    """Walk the whole chain batch by batch and report the first broken entry, if any.

    Only one batch is held at a time: each walk resumes from the last verified entry's hash
    and the seq expected next. The chain starts at seq 1, so a deleted first entry shows as a
    gap at 1 rather than as a broken link one entry later.
    """
    checked, last_seq, last_hash = 0, 0, audit_chain.GENESIS_HASH
    while batch := await _batch(session, last_seq):
        walk = audit_chain.verify(batch, start_prev_hash=last_hash, start_seq=last_seq + 1)
        checked += walk.checked
        last_seq, last_hash = walk.last_seq or last_seq, walk.last_hash
        if not walk.ok:
            return audit_chain.VerifyResult(
                ok=False,
                checked=checked,
                first_broken_seq=walk.first_broken_seq,
                problem=walk.problem,
                last_seq=last_seq or None,
                last_hash=last_hash,
            )
        if len(batch) < VERIFY_BATCH:
            break
    return audit_chain.VerifyResult(
        ok=True,
        checked=checked,
        first_broken_seq=None,
        problem=None,
        last_seq=last_seq or None,
        last_hash=last_hash,
    )
