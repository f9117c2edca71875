"""SQL for the issuer's tables; every function runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer.models import (
    AssertionJti,
    AuthorizationCode,
    DevUser,
    OAuthClient,
    SigningKey,
)

# Serialises key creation and rotation across issuer processes for one transaction.
_SIGNING_KEYS_LOCK = 0x6361_7365_6B65_7973  # "casekeys"


async def ping(session: AsyncSession) -> None:
    """Fail unless the database answers."""
    await session.execute(text("SELECT 1"))


async def get_client(session: AsyncSession, *, client_id: str) -> OAuthClient | None:
    """An enabled client by id; disabled clients look exactly like unknown ones."""
    query = select(OAuthClient).where(
        OAuthClient.client_id == client_id, OAuthClient.disabled.is_(False)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_existing_client_ids(session: AsyncSession, *, client_ids: Iterable[str]) -> set[str]:
    """Which of `client_ids` are registered, enabled or not."""
    query = select(OAuthClient.client_id).where(OAuthClient.client_id.in_(list(client_ids)))
    return set((await session.execute(query)).scalars())


async def create_client(session: AsyncSession, *, client: OAuthClient) -> None:
    """Register a client; a duplicate id fails with the database's integrity error."""
    session.add(client)
    await session.flush()


async def update_secret_hash(session: AsyncSession, *, client_id: str, secret_hash: str) -> None:
    """Replace a client's secret, e.g. when the only record of the old one is lost."""
    await session.execute(
        update(OAuthClient)
        .where(OAuthClient.client_id == client_id)
        .values(secret_hash=secret_hash)
    )


async def update_redirect_uris(
    session: AsyncSession, *, client_id: str, redirect_uris: list[str]
) -> None:
    """Replace the exact redirect URIs a public client may use."""
    await session.execute(
        update(OAuthClient)
        .where(OAuthClient.client_id == client_id)
        .values(redirect_uris=redirect_uris)
    )


async def record_assertion_jti(
    session: AsyncSession, *, client_id: str, jti: str, expires_at: datetime
) -> bool:
    """Remember an assertion id; False when this client already used it (a replay).

    The primary key makes this atomic: a concurrent replay waits for the first insert and
    then finds the row.
    """
    await session.execute(delete(AssertionJti).where(AssertionJti.expires_at < func.now()))
    inserted = await session.execute(
        insert(AssertionJti)
        .values(client_id=client_id, jti=jti, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(AssertionJti.jti)
    )
    return inserted.scalar_one_or_none() is not None


async def lock_signing_keys(session: AsyncSession) -> None:
    """Hold the signing-key lock until the transaction ends."""
    await session.execute(select(func.pg_advisory_xact_lock(_SIGNING_KEYS_LOCK)))


async def get_active_key(session: AsyncSession) -> SigningKey | None:
    """The key new tokens are signed with."""
    query = select(SigningKey).where(SigningKey.retired_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def get_published_keys(session: AsyncSession, *, now: datetime) -> list[SigningKey]:
    """The active key and every retired key still inside its grace period, newest first."""
    query = (
        select(SigningKey)
        .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
        .order_by(SigningKey.activated_at.desc())
    )
    return list((await session.execute(query)).scalars())


async def create_signing_key(session: AsyncSession, *, key: SigningKey) -> None:
    """Store a new key; the one-active-key index refuses a second active one."""
    session.add(key)
    await session.flush()


async def retire_active_keys(session: AsyncSession, *, until: datetime) -> None:
    """Stop signing with the active key; it stays published until `until`."""
    await session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=until)
    )


async def get_user_by_email(session: AsyncSession, *, email: str) -> DevUser | None:
    """An enabled user by (lower-case) email; disabled users look exactly like unknown ones."""
    query = select(DevUser).where(DevUser.email == email, DevUser.disabled.is_(False))
    return (await session.execute(query)).scalar_one_or_none()


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> DevUser | None:
    """An enabled user by id."""
    query = select(DevUser).where(DevUser.id == user_id, DevUser.disabled.is_(False))
    return (await session.execute(query)).scalar_one_or_none()


async def create_user(session: AsyncSession, *, user: DevUser) -> None:
    """Add a user; a duplicate email fails with the database's integrity error."""
    session.add(user)
    await session.flush()


async def update_password_hash(session: AsyncSession, *, email: str, password_hash: str) -> None:
    """Replace a user's password, e.g. when the only record of the old one is lost."""
    await session.execute(
        update(DevUser).where(DevUser.email == email).values(password_hash=password_hash)
    )


async def save_authorization_code(session: AsyncSession, *, code: AuthorizationCode) -> None:
    """Store a new code, dropping codes that expired long enough ago to be of no interest."""
    await session.execute(
        delete(AuthorizationCode).where(
            AuthorizationCode.expires_at < func.now() - text("interval '1 day'")
        )
    )
    session.add(code)
    await session.flush()


async def consume_authorization_code(
    session: AsyncSession, *, code_hash: str, client_id: str
) -> AuthorizationCode | None:
    """Mark an unexpired, unused code of this client as used and return it, or None.

    One UPDATE makes redemption single-use even when two requests race: the second waits for
    the first's row lock and then finds `used_at` set.
    """
    result = await session.execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == code_hash,
            AuthorizationCode.client_id == client_id,
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AuthorizationCode)
    )
    return result.scalar_one_or_none()
