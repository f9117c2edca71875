"""evidence: hub signing keys, signed records, recalls, deletion requests, platform keys

Adds the `recalled` delivery state, the platform's optional signing key and the response's
platform signature (kept until fan-out, like the disclosures it signs).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "submission.accepted",
    "submission.rejected",
    "delivery.relayed",
    "delivery.retrieved",
    "delivery.not-retrieved",
    "response.recalled",
    "delivery.withdrawn",
    "delivery.deletion-requested",
    "delivery.deletion-confirmed",
    "delivery.payload-deleted",
    "release.released",
    "release.withheld",
    "request.sent",
    "request.answered",
)
# the states after the release migration (0011); this one adds `recalled`
OLD_STATES = ("held", "withheld", "pending", "published", "acknowledged", "failed")
NEW_STATES = (*OLD_STATES, "recalled")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "hub_signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sealed_private_jwk", sa.Text(), nullable=True),
        sa.Column(
            "activated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "retired_at IS NOT NULL OR sealed_private_jwk IS NOT NULL",
            name=op.f("ck_hub_signing_keys_active_key_sealed"),
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_hub_signing_keys")),
    )
    op.create_table(
        "evidence_records",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("response_id", sa.UUID(), nullable=True),
        sa.Column("delivery_id", sa.UUID(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_digest", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.CheckConstraint(_in("kind", KINDS), name=op.f("ck_evidence_records_kind")),
        sa.ForeignKeyConstraint(
            ["kid"], ["hub_signing_keys.kid"], name=op.f("fk_evidence_records_kid_hub_signing_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_records")),
    )
    op.create_index(
        "ix_evidence_records_response", "evidence_records", ["response_id", "at"], unique=False
    )
    op.create_index(
        "ix_evidence_records_delivery", "evidence_records", ["delivery_id", "at"], unique=False
    )
    op.create_table(
        "recalls",
        sa.Column("response_id", sa.UUID(), nullable=False),
        sa.Column("recalled_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "recalled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["response_id"], ["responses.id"], name=op.f("fk_recalls_response_id_responses")
        ),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_recalls")),
    )
    op.create_table(
        "deletion_requests",
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("response_id", sa.UUID(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="requested", nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminders", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_by_client", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('requested', 'confirmed')", name=op.f("ck_deletion_requests_state")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_deletion_requests_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction"],
            ["jurisdictions.code"],
            name=op.f("fk_deletion_requests_jurisdiction_jurisdictions"),
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_deletion_requests_response_id_responses"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_deletion_requests")),
    )
    op.create_index(
        "ix_deletion_requests_open",
        "deletion_requests",
        ["reminded_at"],
        unique=False,
        postgresql_where=sa.text("state = 'requested'"),
    )
    op.add_column(
        "platforms",
        sa.Column("signing_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("responses", sa.Column("platform_signature", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_deliveries_state"), "deliveries", type_="check")
    op.create_check_constraint(op.f("ck_deliveries_state"), "deliveries", _in("state", NEW_STATES))
    op.create_index(
        "ix_deliveries_payload_retention",
        "deliveries",
        ["acknowledged_at"],
        unique=False,
        postgresql_where=sa.text("sealed_disclosures IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deliveries_payload_retention",
        table_name="deliveries",
        postgresql_where=sa.text("sealed_disclosures IS NOT NULL"),
    )
    op.execute("UPDATE deliveries SET state = 'failed' WHERE state = 'recalled'")
    op.drop_constraint(op.f("ck_deliveries_state"), "deliveries", type_="check")
    op.create_check_constraint(op.f("ck_deliveries_state"), "deliveries", _in("state", OLD_STATES))
    op.drop_column("responses", "platform_signature")
    op.drop_column("platforms", "signing_jwk")
    op.drop_index(
        "ix_deletion_requests_open",
        table_name="deletion_requests",
        postgresql_where=sa.text("state = 'requested'"),
    )
    op.drop_table("deletion_requests")
    op.drop_table("recalls")
    op.drop_index("ix_evidence_records_delivery", table_name="evidence_records")
    op.drop_index("ix_evidence_records_response", table_name="evidence_records")
    op.drop_table("evidence_records")
    op.drop_table("hub_signing_keys")
