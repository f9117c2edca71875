"""releases: held deliveries and the originator's decisions, H3 conditions, minimisation,
consented coordination and consented link references

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_STATES = "state IN ('held', 'withheld', 'pending', 'published', 'acknowledged', 'failed')"
OLD_DELIVERY_STATES = "state IN ('pending', 'published', 'acknowledged', 'failed')"
CASE_STATUSES = "status IN ('open', 'pending_coordination', 'suspended', 'closed')"
OLD_CASE_STATUSES = "status IN ('open', 'suspended', 'closed')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_deliveries_state"), "deliveries", type_="check")
    op.create_check_constraint("state", "deliveries", DELIVERY_STATES)
    op.add_column(
        "deliveries",
        sa.Column("conditions_accepted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("deliveries", sa.Column("disclosure_count", sa.Integer(), nullable=True))
    op.alter_column(
        "cases", "status", type_=sa.String(length=24), existing_type=sa.String(length=16)
    )
    op.drop_constraint(op.f("ck_cases_status"), "cases", type_="check")
    op.create_check_constraint("status", "cases", CASE_STATUSES)
    op.add_column(
        "cases",
        sa.Column("release_policy", sa.String(length=24), server_default="none", nullable=False),
    )
    op.add_column("cases", sa.Column("coordination_state", sa.String(length=16), nullable=True))
    op.add_column("cases", sa.Column("coordination_reason", sa.Text(), nullable=True))
    # cases registered with a coordinator before consent existed keep their standing
    op.execute(
        "UPDATE cases SET coordination_state = 'accepted'"
        " WHERE coordinating_jurisdiction IS NOT NULL"
    )
    op.create_check_constraint(
        "release_policy",
        "cases",
        "release_policy IN ('none', 'members', 'members_and_partners')",
    )
    op.create_check_constraint(
        "coordination_state",
        "cases",
        "coordination_state IN ('pending', 'accepted', 'declined', 'withdrawn')",
    )
    op.add_column("case_links", sa.Column("consent_a_at", sa.DateTime(timezone=True)))
    op.add_column("case_links", sa.Column("consent_b_at", sa.DateTime(timezone=True)))
    op.add_column("responses", sa.Column("handling_conditions", sa.Text(), nullable=True))
    op.add_column(
        "responses",
        sa.Column(
            "disclosure_selector_hashes", postgresql.ARRAY(sa.String(length=64)), nullable=True
        ),
    )
    op.create_check_constraint(
        "h3_conditions", "responses", "handling_code <> 'H3' OR handling_conditions IS NOT NULL"
    )
    _create_releases()


def _create_releases() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("response_id", sa.UUID(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("requesting_case_id", sa.UUID(), nullable=True),
        sa.Column("originator", sa.String(length=2), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by_client", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lapses_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "state IN ('held', 'released', 'withheld', 'lapsed')", name=op.f("ck_releases_state")
        ),
        sa.CheckConstraint(
            "basis IN ('voluntary_disclosure', 'requesting_party', 'case_policy',"
            " 'awaiting_originator', 'originator_decision', 'not_decided_in_time')",
            name=op.f("ck_releases_basis"),
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_releases_delivery_id_deliveries")
        ),
        sa.ForeignKeyConstraint(
            ["response_id"], ["responses.id"], name=op.f("fk_releases_response_id_responses")
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction"],
            ["jurisdictions.code"],
            name=op.f("fk_releases_jurisdiction_jurisdictions"),
        ),
        sa.ForeignKeyConstraint(
            ["requesting_case_id"],
            ["cases.id"],
            name=op.f("fk_releases_requesting_case_id_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["originator"],
            ["jurisdictions.code"],
            name=op.f("fk_releases_originator_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_releases_delivery_id")),
    )
    op.create_index(
        "ix_releases_originator_state", "releases", ["originator", "state", "created_at"]
    )
    op.create_index("ix_releases_state_lapses_at", "releases", ["state", "lapses_at"])
    op.create_index(op.f("ix_releases_response_id"), "releases", ["response_id"])


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_constraint(op.f("ck_responses_h3_conditions"), "responses", type_="check")
    op.drop_column("responses", "disclosure_selector_hashes")
    op.drop_column("responses", "handling_conditions")
    op.drop_column("case_links", "consent_b_at")
    op.drop_column("case_links", "consent_a_at")
    op.drop_constraint(op.f("ck_cases_coordination_state"), "cases", type_="check")
    op.drop_constraint(op.f("ck_cases_release_policy"), "cases", type_="check")
    op.drop_column("cases", "coordination_reason")
    op.drop_column("cases", "coordination_state")
    op.drop_column("cases", "release_policy")
    op.execute("UPDATE cases SET status = 'suspended' WHERE status = 'pending_coordination'")
    op.drop_constraint(op.f("ck_cases_status"), "cases", type_="check")
    op.create_check_constraint("status", "cases", OLD_CASE_STATUSES)
    op.alter_column(
        "cases", "status", type_=sa.String(length=16), existing_type=sa.String(length=24)
    )
    op.execute("DELETE FROM deliveries WHERE state IN ('held', 'withheld')")
    op.drop_column("deliveries", "conditions_accepted_at")
    op.drop_column("deliveries", "disclosure_count")
    op.drop_constraint(op.f("ck_deliveries_state"), "deliveries", type_="check")
    op.create_check_constraint("state", "deliveries", OLD_DELIVERY_STATES)
