"""deliveries by jurisdiction in arrival order: the inbox's first page stays a short walk

The inbox lists a jurisdiction's deliveries oldest first, a page at a time, joined to their
cases and responses. With only (jurisdiction, state) nothing gives that order, so every
delivery of the jurisdiction was joined and sorted before the first page could be returned;
the bench's scale curve showed the first page going from 8 to 98 ms between 10^4 and 3 x 10^4
registered cases. With (jurisdiction, created_at, id) the page is read in index order and each
row's case and response are probed by primary key, whatever the registry's size.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_jurisdiction_created",
        "deliveries",
        ["jurisdiction", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_jurisdiction_created", table_name="deliveries")
