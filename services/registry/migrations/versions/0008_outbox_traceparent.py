"""outbox: the W3C traceparent of the transaction that queued each event

The relay publishes an event after its request has answered, from another process; the stored
traceparent lets the publish, and the router's work on the record, join the request's trace.
Null when tracing is off (the relay then starts a trace of its own, as before).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
