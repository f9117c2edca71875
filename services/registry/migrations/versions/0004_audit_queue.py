"""audit queue: entries are chained by a sequencer instead of under a lock in every writer

Every writer used to take one global advisory lock, read the chain's head and hold the lock
until its commit, which serialised all writes of all services. Writers now insert into
``audit_queue``; the sequencer moves entries into ``audit_log`` (still append-only) in batches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Queued entries may leave (the sequencer deletes what it chained) but never change.
NO_EDIT = (
    """CREATE FUNCTION audit_queue_no_edit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_queue entries cannot be edited (% refused)', TG_OP;
    END $$""",
    """CREATE TRIGGER audit_queue_no_update BEFORE UPDATE ON audit_queue
        FOR EACH ROW EXECUTE FUNCTION audit_queue_no_edit()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_queue",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_queue")),
    )
    for statement in NO_EDIT:
        op.execute(statement)


def downgrade() -> None:
    # Entries still queued would be lost: refuse rather than drop them.
    op.execute(
        """DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM audit_queue) THEN
                RAISE EXCEPTION 'audit_queue is not empty: run the sequencer before downgrading';
            END IF;
        END $$"""
    )
    op.execute("DROP TRIGGER audit_queue_no_update ON audit_queue")
    op.execute("DROP FUNCTION audit_queue_no_edit()")
    op.drop_table("audit_queue")
