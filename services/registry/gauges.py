"""What the registry's tables say about the hub's backlogs, as Prometheus gauges.

Each sampler is one cheap query on an index (the outbox's partial index on unpublished rows,
the small audit queue, the deliveries' state index), run by `shared.metrics.DatabaseGauges` at
most once per few seconds. Ages are measured by the database's clock, which stamped the rows,
so a skewed host clock cannot make an alert fire or stay silent.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import ColumnElement, Float, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.registry.audit.models import QueuedAuditEntry
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.store.models import OutboxEvent


def _age(column: InstrumentedAttribute[datetime]) -> ColumnElement[float]:
    """Seconds since the oldest value of `column` (0 when there is none)."""
    oldest = func.extract("epoch", func.now() - func.min(column))
    return func.coalesce(oldest, 0, type_=Float)


async def outbox(session: AsyncSession) -> list[Metric]:
    """`caseshare_outbox_backlog` and `caseshare_outbox_oldest_unpublished_age_seconds`."""
    row = (
        await session.execute(
            select(func.count(), _age(OutboxEvent.created_at)).where(
                OutboxEvent.published_at.is_(None)
            )
        )
    ).one()
    return [
        GaugeMetricFamily("caseshare_outbox_backlog", "Outbox events not yet published", row[0]),
        GaugeMetricFamily(
            "caseshare_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none)",
            float(row[1]),
        ),
    ]


async def audit_queue(session: AsyncSession) -> list[Metric]:
    """`caseshare_audit_queue_depth` and `caseshare_audit_queue_oldest_age_seconds`."""
    row = (await session.execute(select(func.count(), _age(QueuedAuditEntry.at)))).one()
    return [
        GaugeMetricFamily(
            "caseshare_audit_queue_depth", "Audit entries waiting to be chained", row[0]
        ),
        GaugeMetricFamily(
            "caseshare_audit_queue_oldest_age_seconds",
            "Age of the oldest unchained audit entry (0 when none)",
            float(row[1]),
        ),
    ]


async def deliveries(session: AsyncSession) -> list[Metric]:
    """`caseshare_deliveries{state}`, every state present (0 when no delivery is in it)."""
    counts = dict.fromkeys(DeliveryState, 0)
    rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
    for state, count in rows.tuples():
        counts[DeliveryState(state)] = count
    family = GaugeMetricFamily("caseshare_deliveries", "Deliveries by state", labels=["state"])
    for state, count in counts.items():
        family.add_metric([state.value], count)
    return [family]
