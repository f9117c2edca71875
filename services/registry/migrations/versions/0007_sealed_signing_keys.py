"""signing keys: no private key in the clear; the active one sealed under a key-encryption key

Clear private keys are removed here, without needing the key-encryption key: the active key is
retired with the default grace period (its public key stays published, so tokens it signed
live out their lifetime), and the next issuer to start signs with a new, sealed key. A retired
key is never used to sign again, so it needs no private part at all.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRACE = "interval '900 seconds'"  # IssuerSettings.key_grace_seconds' default


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("sealed_private_jwk", sa.Text(), nullable=True))
    op.execute(
        f"UPDATE signing_keys SET retired_at = now() + {GRACE} WHERE retired_at IS NULL"  # noqa: S608
    )
    op.drop_column("signing_keys", "private_jwk")
    op.create_check_constraint(
        "active_key_sealed",
        "signing_keys",
        "retired_at IS NOT NULL OR sealed_private_jwk IS NOT NULL",
    )


def downgrade() -> None:
    # Sealed keys cannot be unsealed here; the previous version makes a new key at start.
    op.drop_constraint(op.f("ck_signing_keys_active_key_sealed"), "signing_keys", type_="check")
    op.execute("DELETE FROM signing_keys")
    op.add_column(
        "signing_keys",
        sa.Column("private_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    )
    op.drop_column("signing_keys", "sealed_private_jwk")
