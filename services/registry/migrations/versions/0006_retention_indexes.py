"""retention: BRIN indexes on created_at for pruning the outbox and idempotency keys

Rows of both tables arrive in time order, so a BRIN index (a few pages, nearly free to keep up
to date) finds the old ones without reading the whole table on every retention pass.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_created_at", "outbox", ["created_at"], unique=False, postgresql_using="brin"
    )
    op.create_index(
        "ix_idempotency_keys_created_at",
        "idempotency_keys",
        ["created_at"],
        unique=False,
        postgresql_using="brin",
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_index("ix_outbox_created_at", table_name="outbox")
