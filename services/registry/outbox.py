"""Writing events to the transactional outbox: they commit or roll back with the change."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import OutboxEvent
from shared.events import Event, topic_name


def add(
    session: AsyncSession,
    event: Event,
    *,
    key: str,
    subject: str | None,
    prefix: str,
    jurisdiction: str | None = None,
    event_id: uuid.UUID | None = None,
) -> OutboxEvent:
    """Queue `event` for publication on its topic; the relay publishes after commit."""
    row = OutboxEvent(
        event_id=event_id or uuid.uuid4(),
        topic=topic_name(prefix, event.TOPIC, jurisdiction),
        key=key,
        event_type=event.TYPE,
        subject=subject,
        payload=event.model_dump(mode="json"),
    )
    session.add(row)
    return row
