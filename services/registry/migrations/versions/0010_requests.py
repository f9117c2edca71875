"""legal requests: the orders, their state history and durable timers; responses may answer one

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPES = "'production', 'emergency_production', 'preservation'"
STATES = (
    "'issued', 'awaiting_enforcing_review', 'acknowledged', 'clarification_requested', "
    "'clarified', 'preserved', 'answered', 'refused', 'withdrawn', 'lapsed', 'ended', 'objected'"
)
REVIEW = "'not_required', 'pending', 'no_grounds', 'window_closed', 'objected'"
FANOUT_OLD = "fanout_state IN ('received', 'routed', 'completed')"
FANOUT_NEW = "fanout_state IN ('received', 'routed', 'completed', 'held_for_review', 'objected')"


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("issued_by", sa.String(length=2), nullable=False),
        sa.Column("issued_by_client", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("enforcing_jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("review_state", sa.String(length=16), nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("selector_hashes", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("selectors", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("selectors_masked", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("time_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("time_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("issuing_authority", sa.Text(), nullable=False),
        sa.Column("validated_by", sa.Text(), nullable=True),
        sa.Column("follows_request_id", sa.UUID(), nullable=True),
        sa.Column("extended", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_total", sa.Interval(), server_default=sa.text("'0'"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("objection_deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preserved_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"type IN ({TYPES})", name=op.f("ck_requests_type")),
        sa.CheckConstraint(f"state IN ({STATES})", name=op.f("ck_requests_state")),
        sa.CheckConstraint(f"review_state IN ({REVIEW})", name=op.f("ck_requests_review_state")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_requests_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["issued_by"], ["jurisdictions.code"], name=op.f("fk_requests_issued_by_jurisdictions")
        ),
        sa.ForeignKeyConstraint(
            ["platform"], ["platforms.slug"], name=op.f("fk_requests_platform_platforms")
        ),
        sa.ForeignKeyConstraint(
            ["enforcing_jurisdiction"],
            ["jurisdictions.code"],
            name=op.f("fk_requests_enforcing_jurisdiction_jurisdictions"),
        ),
        sa.ForeignKeyConstraint(
            ["follows_request_id"],
            ["requests.id"],
            name=op.f("fk_requests_follows_request_id_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index(op.f("ix_requests_case_id"), "requests", ["case_id"], unique=False)
    op.create_index(
        "ix_requests_platform_created", "requests", ["platform", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_requests_issued_by_created", "requests", ["issued_by", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_requests_enforcing_created",
        "requests",
        ["enforcing_jurisdiction", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "request_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_history_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_history")),
    )
    op.create_index(
        op.f("ix_request_history_request_id"), "request_history", ["request_id"], unique=False
    )
    op.create_table(
        "request_timers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("point", sa.String(length=16), nullable=False),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('response', 'preservation', 'objection')",
            name=op.f("ck_request_timers_kind"),
        ),
        sa.CheckConstraint(
            "point IN ('reminder_50', 'reminder_80', 'expiry')",
            name=op.f("ck_request_timers_point"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_timers_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_timers")),
        sa.UniqueConstraint(
            "request_id", "kind", "point", name=op.f("uq_request_timers_request_id_kind_point")
        ),
    )
    op.create_index(
        "ix_request_timers_due",
        "request_timers",
        ["fire_at"],
        unique=False,
        postgresql_where=sa.text("fired_at IS NULL"),
    )
    op.add_column("responses", sa.Column("request_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_responses_request_id_requests"), "responses", "requests", ["request_id"], ["id"]
    )
    op.create_index(op.f("ix_responses_request_id"), "responses", ["request_id"], unique=False)
    op.drop_constraint(op.f("ck_responses_fanout_state"), "responses", type_="check")
    op.create_check_constraint("fanout_state", "responses", FANOUT_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM responses WHERE fanout_state IN ('held_for_review', 'objected')")
    op.drop_constraint(op.f("ck_responses_fanout_state"), "responses", type_="check")
    op.create_check_constraint("fanout_state", "responses", FANOUT_OLD)
    op.drop_index(op.f("ix_responses_request_id"), table_name="responses")
    op.drop_constraint(op.f("fk_responses_request_id_requests"), "responses", type_="foreignkey")
    op.drop_column("responses", "request_id")
    op.drop_index("ix_request_timers_due", table_name="request_timers")
    op.drop_table("request_timers")
    op.drop_index(op.f("ix_request_history_request_id"), table_name="request_history")
    op.drop_table("request_history")
    op.drop_index("ix_requests_enforcing_created", table_name="requests")
    op.drop_index("ix_requests_issued_by_created", table_name="requests")
    op.drop_index("ix_requests_platform_created", table_name="requests")
    op.drop_index(op.f("ix_requests_case_id"), table_name="requests")
    op.drop_table("requests")
