"""Tables of the embedded authorization server: clients, signing keys, seen client assertions.

Clients carry their identity claim (jurisdiction or platform) here, so a token's claims come
from registration, never from anything the client sends at the token endpoint.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class ClientKind(StrEnum):
    """Who a client acts for; decides which identity claim its tokens carry."""

    AUTHORITY = "authority"
    PLATFORM = "platform"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class OAuthClient(Base):
    """A registered machine client, authenticated by a secret, a public JWK set, or both."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('authority', 'platform', 'coordinator', 'admin')", name="kind_known"
        ),
        CheckConstraint("(kind = 'authority') = (jurisdiction IS NOT NULL)", name="jurisdiction"),
        CheckConstraint("(kind = 'platform') = (platform IS NOT NULL)", name="platform"),
        CheckConstraint("jurisdiction ~ '^[A-Z]{2}$'", name="jurisdiction_iso"),
        CheckConstraint("platform ~ '^[a-z0-9][a-z0-9-]*$'", name="platform_slug"),
        CheckConstraint("secret_hash IS NOT NULL OR jwks IS NOT NULL", name="has_credential"),
    )

    client_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str | None] = mapped_column(Text)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    allowed_scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    jurisdiction: Mapped[str | None] = mapped_column(Text, ForeignKey("jurisdictions.code"))
    platform: Mapped[str | None] = mapped_column(Text, ForeignKey("platforms.slug"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SigningKey(Base):
    """An ES256 key: active while `retired_at` is null, published until `retired_at` passes."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key, whatever races between two issuer processes.
        Index(
            "uq_signing_keys_one_active",
            text("(retired_at IS NULL)"),
            unique=True,
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AssertionJti(Base):
    """A `private_key_jwt` assertion already used; kept until it could no longer be valid."""

    __tablename__ = "oauth_assertion_jtis"

    # A jti is unique per issuer, and an assertion's issuer is its client (RFC 7519 4.1.7).
    client_id: Mapped[str] = mapped_column(Text, primary_key=True)
    jti: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
