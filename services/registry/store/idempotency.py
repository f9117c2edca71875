"""`Idempotency-Key` for POSTs: a retry gets the first answer, a reuse with another body 422.

The key row is inserted first, inside the request's transaction. A concurrent request with the
same key blocks on the unique index until the first commits (then replays its answer) or rolls
back (then proceeds itself), so two racing retries can never both act.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.store.models import IdempotencyKey
from shared.db import transaction
from shared.errors import ValidationFailed

MAX_KEY_LENGTH = 255


def request_hash(method: str, path: str, body: Any) -> str:
    """Fingerprint of what was asked, so a key reused for something else is caught."""
    canonical = orjson.dumps({"m": method, "p": path, "b": body}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def run_once(
    session: AsyncSession,
    *,
    client_id: str,
    key: str | None,
    method: str,
    path: str,
    body: Any,
    action: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any], bool]:
    """Run `action` once per (client, key); returns (status, body, replayed)."""
    if key is None:
        status, payload = await action()
        return status, payload, False
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1-255 printable characters")
    fingerprint = request_hash(method, path, body)
    claimed = await session.scalar(
        insert(IdempotencyKey)
        .values(
            client_id=client_id,
            key=key,
            method=method,
            path=path,
            request_hash=fingerprint,
            status_code=0,
            response_body={},
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if claimed is None:
        first = await session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
            )
        )
        assert first is not None
        if first.request_hash != fingerprint:
            raise ValidationFailed("this Idempotency-Key was already used for another request")
        return first.status_code, first.response_body, True
    status, payload = await action()
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
        .values(status_code=status, response_body=payload)
    )
    return status, payload, False


async def create_once(
    sm: async_sessionmaker[AsyncSession],
    *,
    client_id: str,
    key: str | None,
    path: str,
    data: BaseModel,
    status: int,
    create: Callable[[AsyncSession], Awaitable[BaseModel]],
    create_alone: Callable[[], Awaitable[BaseModel]] | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """A POST's whole transaction: `create` runs once per (client, key); retries replay it.

    Without a key there is nothing to claim alongside, and `create_alone`, if given, runs
    instead: a use case that owns its (single-statement) transaction."""
    if key is None and create_alone is not None:
        return status, (await create_alone()).model_dump(mode="json"), False
    # The body is only fingerprinted under a key; most POSTs carry none.
    body = None if key is None else data.model_dump(mode="json")
    async with transaction(sm) as session:

        async def act() -> tuple[int, dict[str, Any]]:
            return status, (await create(session)).model_dump(mode="json")

        return await run_once(
            session,
            client_id=client_id,
            key=key,
            method="POST",
            path=path,
            body=body,
            action=act,
        )
