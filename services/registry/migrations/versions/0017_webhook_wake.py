"""the webhook dispatcher wakes on its own channel, only when a message was queued for it

The dispatcher listened on the outbox relay's channel, so every transaction that queued an
outbox event woke it into a transaction looking for due messages, with or without a webhook
endpoint anywhere: about a tenth of the router's CPU at 50 responses/s. The trigger that
queues webhook messages (migration 0009) now notifies `caseshare_webhooks` when it queued at
least one; the dispatcher listens there and still polls for retries coming due. The NOTIFY rides
in a transaction that queues an inbox event for a jurisdiction with an endpoint; such a
transaction notifies the relay's channel too, save a one-statement registration without a
hit (migration 0016), which queues no inbox event.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 21:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_PUBLISHED = "eu.caseshare.delivery.published.v1"  # shared.events.DeliveryPublished
INBOX_TOPIC = r"\.inbox\.([A-Z]{2})\.v1$"  # shared.events.topic_name(prefix, "inbox", CC)

ENQUEUE = f"""CREATE OR REPLACE FUNCTION webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO webhook_messages (endpoint_id, message_id, event_type, payload)
        SELECT e.id, i.message_id, i.event_type, i.payload
        FROM (
            SELECT CASE WHEN event_type = '{DELIVERY_PUBLISHED}'
                        THEN (payload->>'delivery_id')::uuid ELSE event_id END AS message_id,
                   CASE WHEN event_type = '{DELIVERY_PUBLISHED}'
                        THEN payload->>'jurisdiction'
                        ELSE substring(topic from '{INBOX_TOPIC}') END AS jurisdiction,
                   event_type, payload
            FROM inserted
            WHERE event_type = '{DELIVERY_PUBLISHED}' OR topic ~ '{INBOX_TOPIC}'
        ) AS i
        JOIN webhook_endpoints AS e ON e.jurisdiction = i.jurisdiction AND e.state = 'active'
        ORDER BY e.id
        ON CONFLICT (endpoint_id, message_id) DO NOTHING;
        IF FOUND THEN
            PERFORM pg_notify('caseshare_webhooks', '');
        END IF;
        RETURN NULL;
    END $$"""  # noqa: S608 - constants of this file only
ENQUEUE_0009 = f"""CREATE OR REPLACE FUNCTION webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO webhook_messages (endpoint_id, message_id, event_type, payload)
        SELECT e.id, i.message_id, i.event_type, i.payload
        FROM (
            SELECT CASE WHEN event_type = '{DELIVERY_PUBLISHED}'
                        THEN (payload->>'delivery_id')::uuid ELSE event_id END AS message_id,
                   CASE WHEN event_type = '{DELIVERY_PUBLISHED}'
                        THEN payload->>'jurisdiction'
                        ELSE substring(topic from '{INBOX_TOPIC}') END AS jurisdiction,
                   event_type, payload
            FROM inserted
            WHERE event_type = '{DELIVERY_PUBLISHED}' OR topic ~ '{INBOX_TOPIC}'
        ) AS i
        JOIN webhook_endpoints AS e ON e.jurisdiction = i.jurisdiction AND e.state = 'active'
        ORDER BY e.id
        ON CONFLICT (endpoint_id, message_id) DO NOTHING;
        RETURN NULL;
    END $$"""  # noqa: S608 - constants of this file only


def upgrade() -> None:
    op.execute(ENQUEUE)


def downgrade() -> None:
    op.execute(ENQUEUE_0009)
