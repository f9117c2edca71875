"""SQL of the webhooks: endpoints by owner, the messages due, and the outcome of each call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.reference.models import Jurisdiction
from services.registry.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from services.registry.webhooks.rules import EndpointState, MessageState


async def lock_jurisdiction(session: AsyncSession, code: str) -> None:
    """Serialise registrations of one jurisdiction, so its endpoint limit holds under races."""
    await session.execute(
        select(Jurisdiction.code).where(Jurisdiction.code == code).with_for_update()
    )


async def count_live(session: AsyncSession, jurisdiction: str) -> int:
    """Endpoints of the jurisdiction that are not deleted."""
    found = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(
            WebhookEndpoint.jurisdiction == jurisdiction,
            WebhookEndpoint.state != EndpointState.DELETED,
        )
    )
    return int(found or 0)


async def get_owned(
    session: AsyncSession, *, endpoint_id: uuid.UUID, jurisdiction: str | None, lock: bool = False
) -> WebhookEndpoint | None:
    """The endpoint if it exists, is not deleted and (when named) belongs to `jurisdiction`."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.state != EndpointState.DELETED
    )
    if jurisdiction is not None:
        query = query.where(WebhookEndpoint.jurisdiction == jurisdiction)
    if lock:
        query = query.with_for_update()
    endpoint: WebhookEndpoint | None = await session.scalar(query)
    return endpoint


async def list_endpoints(
    session: AsyncSession, *, jurisdiction: str | None, state: EndpointState | None
) -> Sequence[WebhookEndpoint]:
    """Endpoints not deleted, oldest first, of one jurisdiction and/or in one state."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.state != EndpointState.DELETED)
    if jurisdiction is not None:
        query = query.where(WebhookEndpoint.jurisdiction == jurisdiction)
    if state is not None:
        query = query.where(WebhookEndpoint.state == state)
    query = query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(500)
    return (await session.scalars(query)).all()


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    """How many endpoints are in each state, for the gauge."""
    rows = await session.execute(
        select(WebhookEndpoint.state, func.count()).group_by(WebhookEndpoint.state)
    )
    return {state: int(n) for state, n in rows.tuples()}


async def due(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """Pending messages whose time has come, on active endpoints, oldest first."""
    query = (
        select(
            WebhookMessage.id,
            WebhookMessage.endpoint_id,
            WebhookMessage.message_id,
            WebhookMessage.event_type,
            WebhookMessage.payload,
            WebhookMessage.attempts,
            WebhookEndpoint.url,
            WebhookEndpoint.sealed_secret,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(
            WebhookMessage.state == MessageState.PENDING,
            WebhookMessage.next_attempt_at <= now,
            WebhookEndpoint.state == EndpointState.ACTIVE,
        )
        .order_by(WebhookMessage.id)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def mark_message(
    session: AsyncSession,
    *,
    row_id: int,
    attempts: int,
    state: MessageState,
    next_attempt_at: datetime | None,
    delivered_at: datetime | None,
) -> None:
    values: dict[str, Any] = {"attempts": attempts, "state": state}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if delivered_at is not None:
        values["delivered_at"] = delivered_at
    await session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.id == row_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def log_attempt(
    session: AsyncSession,
    *,
    row_id: int,
    endpoint_id: uuid.UUID,
    attempt: int,
    status_code: int | None,
    error_class: str | None,
    duration_ms: int,
    at: datetime,
) -> None:
    """One line of the delivery log: outcome only, never content."""
    session.add(
        WebhookAttempt(
            message_row_id=row_id,
            endpoint_id=endpoint_id,
            attempt=attempt,
            status_code=status_code,
            error_class=error_class,
            duration_ms=duration_ms,
            attempted_at=at,
        )
    )


async def attempts_of(
    session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int | None = None
) -> Sequence[Row[Any]]:
    """The delivery log of one endpoint with each call's message, newest first."""
    query = (
        select(WebhookAttempt, WebhookMessage.message_id, WebhookMessage.event_type)
        .join(WebhookMessage, WebhookMessage.id == WebhookAttempt.message_row_id)
        .where(WebhookAttempt.endpoint_id == endpoint_id)
        .order_by(WebhookAttempt.id.desc())
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def prune(session: AsyncSession, *, before: datetime, batch: int) -> int:
    """Forget up to `batch` messages settled (delivered or given up) and created before
    `before`, with their delivery log; returns how many. Pending ones are never touched."""
    old = (
        select(WebhookMessage.id)
        .where(WebhookMessage.created_at < before, WebhookMessage.state != MessageState.PENDING)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(old)).all())
    if ids:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.message_row_id.in_(ids)))
        await session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(ids)))
    return len(ids)
