"""cases by platform, status and opener: the router probes it once per jurisdiction

Finding each jurisdiction's lowest open case on a platform read and sorted every open case on
that platform for every fan-out; with (platform, status, opened_by, id) it is one short probe
per jurisdiction, whatever the registry's size. The index replaces (platform, status), its
prefix.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 07:35:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_cases_platform_status_opener",
        "cases",
        ["platform", "status", "opened_by", "id"],
        unique=False,
    )
    op.drop_index("ix_cases_platform_status", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_platform_status", "cases", ["platform", "status"], unique=False)
    op.drop_index("ix_cases_platform_status_opener", table_name="cases")
