"""Writers queue audit entries without waiting for each other; the sequencer chains them.

What is checked here, on the real PostgreSQL: a writer whose transaction is still open does not
hold up another writer (the global lock is gone from the write path); what rolls back is never
chained; entries that commit out of id order are chained in the order they became visible, and
the chain still verifies; concurrent sequencers never chain an entry twice or fork the chain;
the registry's background sequencer chains without being asked; queued entries cannot be
edited; an entry that could never be hashed is refused by its own transaction.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from shared.db import transaction

pytestmark = pytest.mark.integration

# Generous: only a writer blocked on another's open transaction would take this long.
NOT_BLOCKED = 10.0


def entry(marker: str, n: int = 0) -> dict[str, object]:
    return {
        "actor": "test",
        "action": "test.sequenced",
        "subject_type": "marker",
        "subject_id": marker,
        "details": {"n": n},
    }


async def chained(sm: async_sessionmaker[AsyncSession], marker: str) -> list[AuditEntry]:
    async with transaction(sm) as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.subject_id == marker).order_by(AuditEntry.seq)
        )
        return list(rows.all())


async def queued(sm: async_sessionmaker[AsyncSession], marker: str) -> int:
    async with transaction(sm) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(QueuedAuditEntry)
            .where(QueuedAuditEntry.subject_id == marker)
        )
        return count or 0


async def drain(sm: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sm) as session:
        await audit.drain(session)


async def test_an_open_writer_does_not_hold_up_another(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"open-{uuid.uuid4()}"
    async with transaction(sessionmaker) as first:
        await audit.append_many(first, [entry(marker, 1)])

        async def second() -> None:
            async with transaction(sessionmaker) as session:
                await audit.append_many(session, [entry(marker, 2)])

        await asyncio.wait_for(second(), NOT_BLOCKED)  # commits while `first` is open
    await drain(sessionmaker)
    assert sorted(e.details["n"] for e in await chained(sessionmaker, marker)) == [1, 2]


async def test_a_rolled_back_entry_is_never_chained(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"rollback-{uuid.uuid4()}"

    async def failing_change() -> None:
        async with transaction(sessionmaker) as session:
            await audit.append_many(session, [entry(marker)])
            raise RuntimeError("the change fails after its audit entry was queued")

    with pytest.raises(RuntimeError):
        await failing_change()
    await drain(sessionmaker)
    assert await chained(sessionmaker, marker) == []
    assert await queued(sessionmaker, marker) == 0


async def test_entries_committed_out_of_id_order_are_chained_as_they_appear(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"order-{uuid.uuid4()}"
    async with transaction(sessionmaker) as early:
        await audit.append_many(early, [entry(marker, 1)])  # lower id, commits last
        async with transaction(sessionmaker) as late:
            await audit.append_many(late, [entry(marker, 2)])
        await drain(sessionmaker)  # sees only the second entry
    await drain(sessionmaker)
    found = await chained(sessionmaker, marker)
    assert [e.details["n"] for e in found] == [2, 1]
    assert found[0].seq < found[1].seq
    async with transaction(sessionmaker) as session:
        result = await audit.verify(session)
    assert result.ok, result


async def test_concurrent_sequencers_chain_each_entry_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"race-{uuid.uuid4()}"
    writers = 8

    async def write(i: int) -> None:
        async with transaction(sessionmaker) as session:
            await audit.append_many(session, [entry(marker, i * 10 + j) for j in range(10)])

    async def sequence_once(wait: bool) -> None:
        async with transaction(sessionmaker) as session:
            await audit.sequence(session, wait=wait, limit=7)

    for _ in range(3):
        await asyncio.gather(
            *(write(i) for i in range(writers)),
            *(sequence_once(wait=i % 2 == 0) for i in range(4)),
        )
    await drain(sessionmaker)
    found = await chained(sessionmaker, marker)
    numbers = sorted(e.details["n"] for e in found)
    assert numbers == sorted([i * 10 + j for i in range(writers) for j in range(10)] * 3)
    async with transaction(sessionmaker) as session:
        result = await audit.verify(session)
        seqs = (await session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq))).all()
    assert result.ok, result
    assert list(seqs) == list(range(1, len(seqs) + 1))  # gapless: no seq taken twice


async def test_the_background_sequencer_chains_without_being_asked(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"background-{uuid.uuid4()}"
    stop = asyncio.Event()
    task = asyncio.create_task(audit.run_sequencer(sessionmaker, stop, interval=0.05))
    try:
        async with transaction(sessionmaker) as session:
            await audit.append_many(session, [entry(marker, n) for n in range(3)])
        for _ in range(200):
            if len(await chained(sessionmaker, marker)) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, NOT_BLOCKED)
    assert [e.details["n"] for e in await chained(sessionmaker, marker)] == [0, 1, 2]
    assert await queued(sessionmaker, marker) == 0


async def test_a_queued_entry_cannot_be_edited(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"edit-{uuid.uuid4()}"

    async def edit_while_queued() -> None:
        # one transaction, so no running sequencer can chain the entry first
        async with transaction(sessionmaker) as session:
            await audit.append_many(session, [entry(marker)])
            await session.execute(
                update(QueuedAuditEntry)
                .where(QueuedAuditEntry.subject_id == marker)
                .values(actor="someone else")
            )

    with pytest.raises(DBAPIError, match="cannot be edited"):
        await edit_while_queued()
    assert await queued(sessionmaker, marker) == 0


async def test_an_entry_that_cannot_be_hashed_is_refused_by_its_writer(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    marker = f"float-{uuid.uuid4()}"
    with pytest.raises(ValueError, match="floats are not allowed"):
        async with transaction(sessionmaker) as session:
            await audit.append_many(session, [{**entry(marker), "details": {"score": 0.5}}])
    assert await queued(sessionmaker, marker) == 0


async def test_the_queue_is_empty_after_a_verify(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessionmaker) as session:
        await audit.append_many(session, [entry(f"verify-{uuid.uuid4()}")])
    async with transaction(sessionmaker) as session:
        assert (await audit.verify(session)).ok
    async with transaction(sessionmaker) as session:
        left = await session.scalar(text("SELECT count(*) FROM audit_queue"))
    assert left == 0
