"""pending changes: a jurisdiction's status or key changes only with a second admin's approval

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'member', 'partner', 'associated', 'suspended'"


def upgrade() -> None:
    op.create_table(
        "pending_changes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        sa.Column(
            "proposed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'superseded')", name=op.f("ck_pending_changes_state")
        ),
        sa.CheckConstraint(
            f"status IS NULL OR status IN ({STATUSES})", name=op.f("ck_pending_changes_status")
        ),
        sa.CheckConstraint(
            "status IS NOT NULL OR public_jwk IS NOT NULL",
            name=op.f("ck_pending_changes_changes_something"),
        ),
        sa.CheckConstraint(
            "(state = 'pending') = (decided_by IS NULL AND decided_at IS NULL)",
            name=op.f("ck_pending_changes_decided"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction"],
            ["jurisdictions.code"],
            name=op.f("fk_pending_changes_jurisdiction_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_changes")),
    )
    op.create_index(
        "ix_pending_changes_open",
        "pending_changes",
        ["jurisdiction"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_pending_changes_open",
        table_name="pending_changes",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("pending_changes")
