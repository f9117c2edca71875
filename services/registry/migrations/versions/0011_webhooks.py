"""webhooks: endpoints, the messages owed to each, the delivery log, and the outbox trigger

The trigger queues, in the same transaction as the event, one message per active endpoint of
the event's jurisdiction for every event on an inbox topic (`<prefix>.inbox.<CC>.v1`: link
notices, request and deadline events) and for every `DeliveryPublished` (the delivery itself
goes out, under its delivery id). It is per statement with a transition table, so a fan-out's
bulk INSERT costs one extra statement, and a re-published delivery is not queued twice.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-01 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_PUBLISHED = "eu.caseshare.delivery.published.v1"  # shared.events.DeliveryPublished
INBOX_TOPIC = r"\.inbox\.([A-Z]{2})\.v1$"  # shared.events.topic_name(prefix, "inbox", CC)

ENQUEUE = f"""CREATE FUNCTION webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
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
TRIGGER = """CREATE TRIGGER outbox_webhooks AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_enqueue()"""


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=24), server_default="pending_approval", nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("created_by_client", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "consecutive_failures >= 0", name=op.f("ck_webhook_endpoints_consecutive_failures")
        ),
        sa.CheckConstraint(
            "state IN ('pending_approval', 'active', 'disabled', 'deleted')",
            name=op.f("ck_webhook_endpoints_state"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction"],
            ["jurisdictions.code"],
            name=op.f("fk_webhook_endpoints_jurisdiction_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_jurisdiction_state",
        "webhook_endpoints",
        ["jurisdiction", "state"],
        unique=False,
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=False),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_webhook_messages_attempts")),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name=op.f("ck_webhook_messages_state")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_messages_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
        sa.UniqueConstraint(
            "endpoint_id", "message_id", name=op.f("uq_webhook_messages_endpoint_id_message_id")
        ),
    )
    op.create_index(
        "ix_webhook_messages_due",
        "webhook_messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_messages_created_at",
        "webhook_messages",
        ["created_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("message_row_id", sa.BigInteger(), nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_attempts_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["message_row_id"],
            ["webhook_messages.id"],
            name=op.f("fk_webhook_attempts_message_row_id_webhook_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_message", "webhook_attempts", ["message_row_id"], unique=False
    )
    op.execute(ENQUEUE)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_webhooks ON outbox")
    op.execute("DROP FUNCTION webhook_enqueue()")
    op.drop_index("ix_webhook_attempts_message", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index(
        "ix_webhook_messages_due",
        table_name="webhook_messages",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_index(
        "ix_webhook_messages_created_at", table_name="webhook_messages", postgresql_using="brin"
    )
    op.drop_table("webhook_messages")
    op.drop_index("ix_webhook_endpoints_jurisdiction_state", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
