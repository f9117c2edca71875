"""The hash-chained audit log: queueing entries, chaining them, verifying the chain.

Writers never touch the chain. `append` and `append_many` insert into `audit_queue`, inside
the writer's own transaction, so an entry commits (or rolls back) with the change it records
and no writer waits for another. The sequencer (`sequence`, run continuously by the registry
through `run_sequencer`, and by `verify` before it walks) takes the chain's one advisory lock,
moves the committed queue into `audit_log` in id order, and computes each entry's seq and
hash from its predecessor's. An entry is chained within about `SEQUENCER_INTERVAL` of its
commit; until then it is durable but not yet covered by the hash chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Text, delete, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import TypeEngine

from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.store import bulk
from shared import audit_chain
from shared.db import transaction

logger = logging.getLogger(__name__)

AUDIT_LOCK_KEY = 0x0CA5E5A0D17  # arbitrary, stable: the one advisory lock of the audit chain
VERIFY_BATCH = 2000
SEQUENCE_BATCH = 1000  # entries chained per sequencer transaction
SEQUENCER_INTERVAL = 0.2  # seconds between looks at an empty queue
_ENTRY_COLUMNS: dict[str, TypeEngine[Any]] = {
    "at": DateTime(timezone=True),
    "actor": Text(),
    "action": Text(),
    "subject_type": Text(),
    "subject_id": Text(),
    "details": Text(),  # JSON text, cast to jsonb by the database
}
_QUEUE = bulk.RowInserter(QueuedAuditEntry, columns=_ENTRY_COLUMNS, casts={"details": JSONB()})
_LOG = bulk.RowInserter(
    AuditEntry,
    columns={"seq": BigInteger(), **_ENTRY_COLUMNS, "prev_hash": Text(), "hash": Text()},
    casts={"details": JSONB()},
)
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
) -> str:
    """Queue one entry for the chain, in the caller's transaction; never carries personal data.

    Returns the entry's content digest (`audit_chain.content_digest`), which evidence records
    sign to name the entry before it is chained."""
    (digest,) = await append_many(
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
    return digest


async def append_many(session: AsyncSession, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Queue several entries with one INSERT; they are chained in this order. Returns each
    entry's content digest, in order."""
    rows, digests = staged_many(entries)
    await bulk.write(session, rows)
    return digests


def staged_many(entries: Sequence[Mapping[str, Any]]) -> tuple[bulk.Rows, list[str]]:
    """`append_many`'s rows and digests, for a caller that writes the rows with other tables'
    (`bulk.write`)."""
    rows, digests = queued_rows(entries)
    return staged_rows(rows), digests


def queued_rows(entries: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The queue rows of `entries` (details as JSON-ready dicts) and their content digests:
    for `staged_rows` (`bulk.write`), or for a server-side function that inserts them itself.

    Each entry's details are checked against the canonical form now, so an entry that could
    never be hashed (a float, a lone surrogate) fails its own transaction rather than the
    sequencer's.
    """
    at = datetime.now(UTC)
    bound = _request_token.get()
    rows, digests = [], []
    for entry in entries:
        body = dict(entry.get("details") or {})
        if bound is not None and bound[0] == entry["actor"]:
            body.setdefault("token_id", bound[1])
        row: dict[str, Any] = {
            "at": at,
            "actor": str(entry["actor"]),
            "action": str(entry["action"]),
            "subject_type": str(entry["subject_type"]),
            "subject_id": str(entry["subject_id"]),
            "details": body,
        }
        digests.append(audit_chain.content_digest(**row))
        rows.append(row)
    return rows, digests


def staged_rows(rows: Sequence[Mapping[str, Any]]) -> bulk.Rows:
    """Rows made by `queued_rows`, as `bulk.write` inserts them (details as JSON text)."""
    return bulk.Rows(
        _QUEUE, [{**row, "details": orjson.dumps(row["details"]).decode()} for row in rows]
    )


async def sequence(session: AsyncSession, *, wait: bool = True, limit: int = SEQUENCE_BATCH) -> int:
    """Chain up to `limit` committed queued entries in id order; returns how many.

    Holds the chain's advisory lock until the caller commits. With `wait=False` it returns 0
    at once when another sequencer holds the lock. Entries committed later with a lower id
    (their transaction started earlier) are chained by a later call: seq is chain order.
    """
    if wait:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    elif not await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY}
    ):
        return 0
    oldest = select(QueuedAuditEntry.id).order_by(QueuedAuditEntry.id).limit(limit)
    taken = (
        await session.execute(
            delete(QueuedAuditEntry)
            .where(QueuedAuditEntry.id.in_(oldest.scalar_subquery()))
            .returning(
                QueuedAuditEntry.id,
                QueuedAuditEntry.at,
                QueuedAuditEntry.actor,
                QueuedAuditEntry.action,
                QueuedAuditEntry.subject_type,
                QueuedAuditEntry.subject_id,
                QueuedAuditEntry.details,
            )
        )
    ).all()
    if not taken:
        return 0
    head = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    prev_hash = head.hash if head else audit_chain.GENESIS_HASH
    seq = head.seq if head else 0
    chained = []
    for row in sorted(taken, key=lambda r: r.id):
        seq += 1
        fields = {
            "at": row.at,
            "actor": row.actor,
            "action": row.action,
            "subject_type": row.subject_type,
            "subject_id": row.subject_id,
            "details": row.details,
        }
        digest = audit_chain.chain_next(prev_hash, seq, **fields)
        text_fields = {**fields, "details": orjson.dumps(row.details).decode()}
        chained.append({"seq": seq, **text_fields, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    await _LOG.insert(session, chained)
    return len(chained)


async def drain(session: AsyncSession) -> int:
    """Chain everything queued and committed so far (waiting for the lock); returns how many."""
    total = 0
    while (moved := await sequence(session)) == SEQUENCE_BATCH:
        total += moved
    return total + moved


async def run_sequencer(
    sm: async_sessionmaker[AsyncSession],
    stop: asyncio.Event,
    *,
    interval: float = SEQUENCER_INTERVAL,
    on_chained: Callable[[int], None] | None = None,
) -> None:
    """Chain queued entries until `stop`: a full batch goes again at once, an empty queue
    waits `interval`. Several processes may run this; one chains at a time, the others skip.
    `on_chained` hears how many entries each committed batch chained (the metric that tells
    a halted sequencer from an idle one)."""
    while not stop.is_set():
        pause = interval
        try:
            async with transaction(sm) as session:
                moved = await sequence(session, wait=False)
            if moved and on_chained is not None:
                on_chained(moved)
            if moved == SEQUENCE_BATCH:
                pause = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("audit sequencer failed; retrying", exc_info=True)
            pause = max(interval, 1.0)
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


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


@dataclass(frozen=True)
class Anchor:
    """A head taken earlier and kept outside the database: entry `seq` had hash `hash`.

    Chaining alone cannot show a deleted tail or a chain rewritten with recomputed hashes;
    a walk checked against an anchor can (see `shared.audit_chain`)."""

    seq: int
    hash: str


async def verify(
    session: AsyncSession, *, anchor: Anchor | None = None
) -> audit_chain.VerifyResult:
    """Chain what is queued, then walk the whole chain batch by batch and report the first
    broken entry, if any; with `anchor`, also that the chain still reaches it unchanged.

    Only one batch is held at a time, and one walk spans them all. The chain starts at seq 1
    from the genesis hash, so a deleted first entry shows as a gap at 1, and the anchor's seq
    is its position in the walk.
    """
    await drain(session)
    walk = audit_chain.Walk(
        audit_chain.GENESIS_HASH, 1, anchor=(anchor.seq, anchor.hash) if anchor else None
    )
    while batch := await _batch(session, walk.last_seq or 0):
        if not all(walk.step(record) for record in batch):
            return walk.result()
        if len(batch) < VERIFY_BATCH:
            break
    return walk.finish()
