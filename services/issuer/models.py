"""Tables of the embedded authorization server: clients, signing keys, seen client assertions,
and for the dashboard's sign-in, development user accounts and authorization codes.

Clients carry their identity claim (jurisdiction or platform) here, so a token's claims come
from registration, never from anything the client sends at the token endpoint.
"""

from __future__ import annotations

import uuid
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class ClientKind(StrEnum):
    """Who a client acts for; decides which identity claim its tokens carry."""

    AUTHORITY = "authority"
    PLATFORM = "platform"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    # Acts for a signed-in user (the dashboard): holds no credential, so PKCE protects its codes.
    PUBLIC = "public"


class OAuthClient(Base):
    """A registered client: a machine client authenticated by a secret, a public JWK set or both,
    or a public client that may only redirect a user's browser to its registered URIs."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('authority', 'platform', 'coordinator', 'admin', 'public')",
            name="kind_known",
        ),
        CheckConstraint("(kind = 'authority') = (jurisdiction IS NOT NULL)", name="jurisdiction"),
        CheckConstraint("(kind = 'platform') = (platform IS NOT NULL)", name="platform"),
        CheckConstraint("jurisdiction ~ '^[A-Z]{2}$'", name="jurisdiction_iso"),
        CheckConstraint("platform ~ '^[a-z0-9][a-z0-9-]*$'", name="platform_slug"),
        CheckConstraint(
            "kind = 'public' OR secret_hash IS NOT NULL OR jwks IS NOT NULL", name="has_credential"
        ),
        CheckConstraint(
            "kind <> 'public' OR (secret_hash IS NULL AND jwks IS NULL)",
            name="public_no_credential",
        ),
        CheckConstraint(
            "(kind = 'public') = (cardinality(redirect_uris) > 0)", name="public_redirect_uris"
        ),
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
    # Exact-match list (RFC 9700 2.1); only public clients use the authorization endpoint.
    redirect_uris: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default=text("'{}'")
    )


class SigningKey(Base):
    """An ES256 key: active while `retired_at` is null, published until `retired_at` passes.

    The private key is stored only sealed under a key-encryption key (`shared.keywrap`), so a
    read of this table yields no key to sign with; a retired key may have none at all.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key, whatever races between two issuer processes.
        Index(
            "uq_signing_keys_one_active",
            text("(retired_at IS NULL)"),
            unique=True,
            postgresql_where=text("retired_at IS NULL"),
        ),
        CheckConstraint(
            "retired_at IS NOT NULL OR sealed_private_jwk IS NOT NULL", name="active_key_sealed"
        ),
    )

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    sealed_private_jwk: Mapped[str | None] = mapped_column(Text)
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


class DevUser(Base):
    """A person who signs in at the embedded issuer; production users live in the IdP."""

    __tablename__ = "dev_users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    allowed_scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuthorizationCode(Base):
    """A code handed to a browser, redeemable once, briefly, with the PKCE verifier behind it.

    Only a hash of the code is stored, so a read of this table yields nothing to redeem.
    """

    __tablename__ = "oauth_authorization_codes"
    __table_args__ = (CheckConstraint("code_challenge_method = 'S256'", name="s256_only"),)

    code_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    client_id: Mapped[str] = mapped_column(Text, ForeignKey("oauth_clients.client_id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dev_users.id"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(Text)
    code_challenge_method: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
